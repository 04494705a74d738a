package shell

import (
	"context"
	"io"

	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Terminal starts spec.Cmd on a pseudo-terminal; see runtimes.Interactive for the contract. The
// command is a process like any other, so Close kills what it started.
func (r *Runner) Terminal(ctx context.Context, id string, spec runtimes.ExecSpec, rows, cols uint) (runtimes.Terminal, error) {
	spec.TTY, spec.Stdin = true, nil
	cmd, err := r.command(spec)
	if err != nil {
		return nil, err
	}
	cmd.Stdin, cmd.Rows, cmd.Cols = true, rows, cols
	pr, pw := io.Pipe()
	p, err := r.start(ctx, "terminal", id, cmd, spec.WorkDir, pw, nil)
	if err != nil {
		return nil, err
	}
	t := &terminal{p: p, screen: pr}
	streamEnded := make(chan struct{})
	go t.pump(pw, streamEnded)

	// The first line is the wrapper's ("123\r\n" on a terminal). Nothing else can come before it:
	// no input has been sent yet.
	select {
	case <-p.head.known:
	case <-ctx.Done():
		t.Close()
		return nil, r.errorf("terminal", id, "reading the pid: %w", ctx.Err())
	}
	switch {
	case p.head.workDirFailed():
		t.Close()
		return nil, r.errorf("terminal", id, "entering %q: %w", spec.WorkDir, runtimes.ErrWorkDirNotFound)
	case p.head.pid() > 0:
	case isClosed(streamEnded):
		// The stream ended before the wrapper's line: Docker can lose the output of a TTY command
		// that ends at once. The command ran and ended: a session with nothing (more) to read.
		if _, err := p.wait(ctx, nil); err != nil {
			t.Close()
			return nil, err
		}
		return t, nil
	default:
		t.Close()
		return nil, r.errorf("terminal", id, "unexpected first line")
	}
	if rows > 0 && cols > 0 {
		// The size was given at the start; this covers runtimes that ignore it there (Docker
		// engines older than API 1.42). A command that already ended (e.g. `false`) cannot be
		// resized, and a failure to resize leaves a usable terminal: neither is a reason to refuse
		// the session.
		if err := t.Resize(ctx, rows, cols); err != nil {
			r.log.Debug("terminal: initial resize", zap.String("sandbox", r.shortID(id)), zap.Error(err))
		}
	}
	return t, nil
}

// isClosed reports whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// terminal is a TTY process whose output reaches Read through a pipe.
type terminal struct {
	p      *process
	screen *io.PipeReader
}

// pump copies the session's output through the pid line into the pipe that Read reads, closing
// streamEnded as soon as the output has ended (before the pid line is given up for lost), and
// then the pipe with the stream's outcome.
func (t *terminal) pump(pw *io.PipeWriter, streamEnded chan<- struct{}) {
	err := t.p.s.Copy(t.p.head, io.Discard)
	close(streamEnded)
	t.p.head.finish()
	pw.CloseWithError(err)
}

// Read returns terminal output; io.EOF once the command has ended.
func (t *terminal) Read(b []byte) (int, error) { return t.screen.Read(b) }

// Write types into the terminal.
func (t *terminal) Write(b []byte) (int, error) { return t.p.s.Write(b) }

// Resize sets the terminal's size in character cells.
func (t *terminal) Resize(ctx context.Context, rows, cols uint) error {
	return t.p.s.Resize(ctx, rows, cols)
}

// Wait blocks until the command ends and returns its exit code.
func (t *terminal) Wait(ctx context.Context) (int, error) { return t.p.wait(ctx, nil) }

// Close kills the session's processes when the command still runs (a shell left without its
// terminal would linger otherwise) and releases the connection. It is safe to call more than once.
func (t *terminal) Close() error {
	t.screen.Close()
	t.p.release()
	return nil
}
