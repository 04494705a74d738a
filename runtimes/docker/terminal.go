package docker

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/runtimes"
)

// Terminal starts spec.Cmd on a pseudo-terminal; see runtimes.Interactive for the contract. The
// command runs under the same pid wrapper as Exec so that Close can kill what it started.
func (r *Runtime) Terminal(ctx context.Context, id string, spec runtimes.ExecSpec, rows, cols uint) (runtimes.Terminal, error) {
	spec.TTY, spec.Stdin = true, nil
	opts, err := execOptions(spec)
	if err != nil {
		return nil, err
	}
	opts.AttachStdin = true
	opts.ConsoleSize = client.ConsoleSize{Height: rows, Width: cols} // honoured from API 1.42; Resize below covers older engines
	s, err := r.startExec(ctx, "terminal", id, opts)
	if err != nil {
		return nil, err
	}
	t := &terminal{r: r, id: id, execID: s.execID, hj: s.hj}

	// The first line is the wrapper's pid ("123\r\n" on a terminal). Nothing else can come before
	// it: no input has been sent yet.
	stop := context.AfterFunc(ctx, func() { s.hj.Close() })
	line, err := s.hj.Reader.ReadSlice('\n')
	stopped := stop()
	if err != nil || !stopped {
		s.hj.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("docker: terminal in %s: reading the pid: %w", shortID(id), err)
	}
	t.pid, err = strconv.Atoi(string(bytes.TrimSpace(line)))
	if err != nil || t.pid <= 0 {
		t.Close()
		return nil, fmt.Errorf("docker: terminal in %s: unexpected first line %q", shortID(id), line)
	}
	if rows > 0 && cols > 0 {
		if err := t.Resize(ctx, rows, cols); err != nil && t.running(ctx) {
			t.Close()
			return nil, err
		}
		// A command that already ended (e.g. `false`) cannot be resized; its output and exit
		// code are still there to read.
	}
	return t, nil
}

// terminal is a TTY exec attached over a hijacked connection.
type terminal struct {
	r      *Runtime
	id     string
	execID string
	hj     client.HijackedResponse
	pid    int

	closeOnce sync.Once
}

// Read returns terminal output; io.EOF once the command has ended.
func (t *terminal) Read(p []byte) (int, error) { return t.hj.Reader.Read(p) }

// Write types into the terminal.
func (t *terminal) Write(p []byte) (int, error) { return t.hj.Conn.Write(p) }

// Resize sets the terminal's size in character cells.
func (t *terminal) Resize(ctx context.Context, rows, cols uint) error {
	_, err := t.r.cli.ExecResize(ctx, t.execID, client.ExecResizeOptions{Height: rows, Width: cols})
	return mapErr("terminal: resize", t.id, err)
}

// running reports whether the command still runs (false when that cannot be told).
func (t *terminal) running(ctx context.Context) bool {
	res, err := t.r.cli.ExecInspect(ctx, t.execID, client.ExecInspectOptions{})
	return err == nil && res.Running
}

// Wait blocks until the command ends and returns its exit code.
func (t *terminal) Wait(ctx context.Context) (int, error) {
	code, err := t.r.waitExec(ctx, t.execID, nil, nil)
	if err != nil {
		return -1, mapErr("terminal: wait", t.id, err)
	}
	return code, nil
}

// Close kills the session's processes when the command still runs (a shell left without its
// terminal would linger otherwise) and releases the connection. It is safe to call more than once.
func (t *terminal) Close() error {
	var err error
	t.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		defer t.hj.Close()
		res, ierr := t.r.cli.ExecInspect(ctx, t.execID, client.ExecInspectOptions{})
		if ierr == nil && !res.Running {
			return
		}
		if err = t.r.killTree(ctx, t.id, t.pid); err != nil {
			t.r.log.Warn("terminal: could not kill the session's processes", zap.String("container", shortID(t.id)),
				zap.Int("pid", t.pid), zap.Error(err))
		}
	})
	return err
}
