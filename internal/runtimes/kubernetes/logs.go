package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Logs writes the sandbox's main output; see runtimes.Interactive for the contract.
//
// The API server serves a container's log as one stream: stdout and stderr interleaved as
// written (a split by stream exists only behind the alpha gate PodLogsQuerySplitStreams, and not
// together with a tail). All of it goes to stdout; stderr receives nothing.
func (r *Runtime) Logs(ctx context.Context, id string, opts runtimes.LogOptions, stdout, stderr io.Writer) error {
	if id == "" {
		return fmt.Errorf("kubernetes: logs: empty id: %w", runtimes.ErrNotFound)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	lo := &corev1.PodLogOptions{Container: sandboxContainer, Follow: opts.Follow, Timestamps: opts.Timestamps}
	if opts.Tail >= 0 {
		tail := int64(opts.Tail)
		lo.TailLines = &tail
	}
	var since *sinceFilter
	if !opts.Since.IsZero() {
		// sinceTime travels in whole seconds: ask from the second it falls in, with timestamps,
		// and drop the lines before it here.
		at := metav1.NewTime(opts.Since.Truncate(time.Second))
		lo.SinceTime, lo.Timestamps = &at, true
		since = &sinceFilter{since: opts.Since, keepStamps: opts.Timestamps}
	}
	rc, err := r.cs.CoreV1().Pods(r.opts.Namespace).GetLogs(id, lo).Stream(ctx)
	if err != nil {
		return r.logsErr(ctx, id, err)
	}
	defer rc.Close() // also closed by the client when ctx ends, which ends a follow
	if since != nil {
		err = since.copy(stdout, rc)
	} else {
		_, err = io.Copy(stdout, rc)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("kubernetes: logs %s: %w", id, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("kubernetes: logs %s: %w", id, err)
	}
	return nil
}

// logsErr maps a refused log request: a missing Pod is ErrNotFound, and a Pod whose container has
// not started yet has logged nothing (the kubelet refuses to read a log that does not exist).
func (r *Runtime) logsErr(ctx context.Context, id string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("kubernetes: logs %s: %w", id, ctx.Err())
	}
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: logs %s: %w: %w", id, runtimes.ErrNotFound, err)
	}
	var nr *runtimes.NotRunningError
	if why := r.whyNotRunning(ctx, id, 0); errors.As(why, &nr) && nr.State == runtimes.StateCreated {
		return nil
	} else if why != nil {
		return fmt.Errorf("kubernetes: logs %s: %w (%w)", id, why, err)
	}
	return r.streamErr(ctx, "logs", id, err)
}

// sinceFilter passes on the lines stamped at or after since (the kubelet stamps each line with
// RFC 3339 nanoseconds), with or without their stamp.
type sinceFilter struct {
	since      time.Time
	keepStamps bool
}

// maxLogLine bounds a line held while its stamp is read; the kubelet splits longer lines anyway.
const maxLogLine = 1 << 20

func (f *sinceFilter) copy(w io.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLogLine(br)
		if len(line) > 0 {
			stamp, rest, _ := bytes.Cut(line, []byte(" "))
			at, perr := time.Parse(time.RFC3339Nano, string(stamp))
			if perr != nil || !at.Before(f.since) {
				if !f.keepStamps && perr == nil {
					line = rest
				}
				if _, werr := w.Write(line); werr != nil {
					return werr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLogLine reads one line with its newline, cut at maxLogLine bytes.
func readLogLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull && len(line) < maxLogLine {
			continue
		}
		if err == bufio.ErrBufferFull {
			err = nil
		}
		return line, err
	}
}
