package docker

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Logs writes the sandbox's main output; see runtimes.Interactive for the contract.
func (r *Runtime) Logs(ctx context.Context, id string, opts runtimes.LogOptions, stdout, stderr io.Writer) error {
	if id == "" {
		return emptyID("logs")
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	// A container with a TTY logs one raw stream; ours never have one, but an adopted one might.
	c, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return mapErr("logs", id, err)
	}
	tty := c.Container.Config != nil && c.Container.Config.Tty

	lo := client.ContainerLogsOptions{
		ShowStdout: true,
		ShowStderr: true,
		Follow:     opts.Follow,
		Timestamps: opts.Timestamps,
		Tail:       "all",
	}
	if opts.Tail >= 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		lo.Since = opts.Since.UTC().Format(time.RFC3339Nano)
	}
	rc, err := r.cli.ContainerLogs(ctx, id, lo)
	if err != nil {
		return mapErr("logs", id, err)
	}
	defer rc.Close() // also closed by the client when ctx ends, which ends a follow

	if tty {
		_, err = io.Copy(stdout, rc)
	} else {
		_, err = stdcopy.StdCopy(stdout, stderr, rc)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("docker: logs %s: %w", shortID(id), ctx.Err())
	}
	return mapErr("logs", id, err)
}
