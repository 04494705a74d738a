package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/shell"
)

// runShort runs `/bin/sh -c script` in sandbox id and returns its stdout (at most max bytes)
// once it exits with status 0. It is for the driver's own probes (stats, the OOM counter), which
// read a few files and end by themselves within a second or two: they need no pid wrapper and no
// kill, and when ctx ends first the stream is only detached (the script ends by itself).
func (r *Runtime) runShort(ctx context.Context, op, id, script string, max int) (string, error) {
	st, err := r.startStream(ctx, op, id, streamSpec{cmd: []string{"/bin/sh", "-c", script}})
	if err != nil {
		return "", err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	stdout := &cappedBuffer{max: max}
	stderr := &cappedBuffer{max: 1 << 10}
	if err := st.Copy(stdout, stderr); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return "", fmt.Errorf("kubernetes: %s in %s: %w", op, id, err)
	}
	code, err := st.Wait(ctx)
	switch {
	case err != nil:
		return "", fmt.Errorf("kubernetes: %s in %s: %w", op, id, err)
	case stdout.over:
		return "", fmt.Errorf("kubernetes: %s in %s: more than %d bytes of output", op, id, max)
	case code != 0:
		return "", fmt.Errorf("kubernetes: %s in %s: exit status %d: %s", op, id, code, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// cappedBuffer keeps the first max bytes written and notes that more came.
type cappedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		p = p[:max(room, 0)]
	}
	b.Buffer.Write(p)
	return len(p), nil
}

// oomScript prints how many times the kernel's OOM killer struck in the sandbox container's
// memory cgroup: oom_kill in memory.events (cgroup v2) or memory.oom_control (v1, kernel 4.13+).
const oomScript = `f=/sys/fs/cgroup/memory.events
[ -f $f ] || f=/sys/fs/cgroup/memory/memory.oom_control
while read -r k n; do [ "$k" = oom_kill ] && { echo "$n"; exit 0; }; done < $f
exit 1`

// oomCounts remembers the OOM kill count last read in each sandbox.
type oomCounts struct {
	mu   sync.Mutex
	seen map[string]uint64
}

// OOMKilledSince reports whether the OOM killer struck in sandbox id since its count was last
// read. The Pod's status only tells of a kill of its main process, so the count comes from the
// container's cgroup; the first reading in a sandbox has nothing to compare with and counts any
// kill at all. A query that fails answers false.
func (r *Runtime) oomKilled(ctx context.Context, id string) bool {
	out, err := r.runShort(ctx, "oom count", id, oomScript, 32)
	if err != nil {
		r.log.Debug("oom count", zap.String("sandbox", id), zap.Error(err))
		return false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		return false
	}
	return r.in.oom.update(id, n)
}

// update records count n for sandbox id and says whether it grew (or is the first and not 0).
func (c *oomCounts) update(id string, n uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]uint64{}
	}
	before, known := c.seen[id]
	c.seen[id] = n
	return n > before || (!known && n > 0)
}

// interactive is the driver's state for working inside sandboxes (Runtime.in): the shell layer
// that runs commands, files and terminals over exec streams, the OOM counts, and where the
// streams' own logs go.
type interactive struct {
	sh  *shell.Runner
	oom oomCounts
	// streamLog receives what remotecommand logs of a stream (through klog's context logger):
	// errors of copies that our own cut or detach ended ("Copying stdin failed", "websocket: close
	// sent"), which would otherwise reach stderr as klog's unstructured lines. Debug level.
	streamLog logr.Logger
}

func newInteractive(r *Runtime) *interactive {
	log := r.log.Named("exec")
	return &interactive{
		sh:        shell.NewRunner(starter{r}, shell.Options{Name: "kubernetes", Log: r.log}),
		streamLog: funcr.New(func(prefix, args string) { log.Debug(prefix + args) }, funcr.Options{}),
	}
}

// starter starts the shell layer's processes as exec streams (see exec_stream.go).
type starter struct{ r *Runtime }

var _ shell.Session = (*execStream)(nil)

// Start opens an exec stream of cmd. Kubernetes exec has no user and no environment of its own:
// a user other than the sandbox's cannot be had (ErrNotSupported; the killer, cmd.Killer, runs as
// the sandbox's user, which owns every process the orchestrator starts in it), and the
// environment is set by env(1) in front of the command.
func (s starter) Start(ctx context.Context, op, id string, cmd shell.Command) (shell.Session, error) {
	if cmd.User != "" {
		return nil, fmt.Errorf("kubernetes: %s in %s: choosing the user %q: %w", op, id, cmd.User, runtimes.ErrNotSupported)
	}
	argv := cmd.Argv
	if len(cmd.Env) > 0 {
		argv = append(append([]string{"env", "--"}, cmd.Env...), argv...)
	}
	st, err := s.r.startStream(ctx, op, id, streamSpec{cmd: argv, stdin: cmd.Stdin, tty: cmd.TTY, rows: cmd.Rows, cols: cmd.Cols})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// OOMKilledSince reads the sandbox's OOM kill count (see oomKilled): the kill, if any, is
// already counted when the command's exit status arrives, so t needs no waiting.
func (s starter) OOMKilledSince(ctx context.Context, id string, _ time.Time) bool {
	return s.r.oomKilled(ctx, id)
}
