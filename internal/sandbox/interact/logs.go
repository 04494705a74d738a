package interact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/model"
)

// maxLogLine bounds one line: longer output without a newline is cut into lines of this size.
const maxLogLine = 64 << 10

// LogsInput selects part of a sandbox's main output.
type LogsInput struct {
	Tail   int       // last lines only; < 0: all
	Since  time.Time // zero: from the start
	Follow bool      // keep streaming until the sandbox stops or ctx ends
}

// LogLine is one line of output, without its newline.
type LogLine struct {
	Stream string // stdout or stderr
	Text   []byte
	At     time.Time // when the engine received it; zero if unknown
}

// Logs reads a sandbox's main output.
type Logs struct {
	s  *Service
	sb *model.Sandbox
	in LogsInput
}

// PrepareLogs checks that the caller's sandbox still has its container (logs live as long as it
// does, whatever the sandbox's state), so a refusal is known before any output is written.
func (s *Service) PrepareLogs(ctx context.Context, userID, id uuid.UUID, in LogsInput) (*Logs, error) {
	sb, err := s.sandboxes.Get(ctx, userID, id)
	if err != nil {
		return nil, fmt.Errorf("finding sandbox %s for its logs: %w", id, err)
	}
	l := &Logs{s: s, sb: sb, in: in}
	if err := s.rt.Logs(ctx, container(sb), runtimes.LogOptions{Tail: 0}, nil, nil); err != nil {
		return nil, l.err(err)
	}
	return l, nil
}

func (l *Logs) err(err error) error {
	if errors.Is(err, runtimes.ErrNotFound) {
		return apierror.Conflict("logs_unavailable",
			"sandbox is %s and its container was removed; logs last as long as the container", l.sb.Status).WithCause(err)
	}
	return runtimeErr(l.sb, "reading logs", err)
}

// Run calls emit for each line, in order, from one goroutine. A followed stream on a live sandbox
// counts as a live connection; it ends with a nil error when the sandbox stops, or with ctx's
// error when ctx ends. An error from emit stops the stream and is returned, wrapped.
func (l *Logs) Run(ctx context.Context, emit func(LogLine) error) error {
	if l.in.Follow && l.sb.Status.In(model.Up) {
		release, err := l.s.sandboxes.Connect(ctx, l.sb)
		if err != nil {
			return fmt.Errorf("following logs: %w", err)
		}
		defer release()
	}
	stdout := &lineWriter{stream: "stdout", emit: emit}
	stderr := &lineWriter{stream: "stderr", emit: emit}
	err := l.s.rt.Logs(ctx, container(l.sb), runtimes.LogOptions{
		Tail: l.in.Tail, Since: l.in.Since, Follow: l.in.Follow, Timestamps: true,
	}, stdout, stderr)
	for _, w := range []*lineWriter{stdout, stderr} {
		if w.err != nil {
			return fmt.Errorf("sending a log line: %w", w.err)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("reading logs: %w", ctx.Err())
		}
		return l.err(err)
	}
	for _, w := range []*lineWriter{stdout, stderr} {
		if err := w.flush(); err != nil {
			return fmt.Errorf("sending the last log line: %w", err)
		}
	}
	return nil
}

// lineWriter cuts one stream into lines and takes the engine's timestamp off each.
type lineWriter struct {
	stream string
	emit   func(LogLine) error
	buf    []byte
	err    error
}

func (w *lineWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		end := i
		if i < 0 {
			end = len(p)
		}
		if room := maxLogLine - len(w.buf); end > room {
			// Too long a line: emit what fits and go on with the rest as a new line.
			w.buf = append(w.buf, p[:room]...)
			p = p[room:]
		} else {
			w.buf = append(w.buf, p[:end]...)
			if i < 0 {
				break
			}
			p = p[i+1:]
		}
		if w.err = w.emitLine(); w.err != nil {
			return 0, w.err
		}
	}
	return n, nil
}

// flush emits what is buffered as a last line, if anything is.
func (w *lineWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	return w.emitLine()
}

// emitLine emits what is buffered as one line (empty lines included).
func (w *lineWriter) emitLine() error {
	line := LogLine{Stream: w.stream, Text: w.buf}
	if ts, rest, ok := bytes.Cut(w.buf, []byte{' '}); ok {
		if at, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil {
			line.At, line.Text = at.UTC(), rest
		}
	}
	line.Text = bytes.Clone(line.Text)
	w.buf = w.buf[:0]
	return w.emit(line)
}

// Metrics samples a running or paused sandbox's resource use (it takes about a second).
func (s *Service) Metrics(ctx context.Context, userID, id uuid.UUID) (runtimes.Stats, error) {
	sb, err := s.sandboxes.Get(ctx, userID, id)
	if err != nil {
		return runtimes.Stats{}, fmt.Errorf("finding sandbox %s for its metrics: %w", id, err)
	}
	if !sb.Status.In(model.Up) {
		return runtimes.Stats{}, apierror.Conflict("sandbox_not_running", "sandbox is %s; it must be running or paused", sb.Status)
	}
	st, err := s.rt.Stats(ctx, container(sb))
	return st, runtimeErr(sb, "sampling metrics", err)
}
