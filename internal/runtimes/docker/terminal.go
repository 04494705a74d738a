package docker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Terminal starts spec.Cmd on a pseudo-terminal; see runtimes.Interactive for the contract. The
// command is a process like any other, so Close kills what it started.
func (r *Runtime) Terminal(ctx context.Context, id string, spec runtimes.ExecSpec, rows, cols uint) (runtimes.Terminal, error) {
	spec.TTY, spec.Stdin = true, nil
	opts, err := execOptions(spec)
	if err != nil {
		return nil, err
	}
	opts.AttachStdin = true
	opts.ConsoleSize = client.ConsoleSize{Height: rows, Width: cols} // honoured from API 1.42; Resize below covers older engines
	p, err := r.startProcess(ctx, "terminal", id, opts, spec.WorkDir, io.Discard, nil)
	if err != nil {
		return nil, err
	}
	t := &terminal{p: p, out: p.hj.Reader}

	// The first line is the wrapper's ("123\r\n" on a terminal). Nothing else can come before it:
	// no input has been sent yet.
	stop := context.AfterFunc(ctx, func() { p.hj.Close() })
	line, err := readLine(p.hj.Reader)
	stopped := stop()
	if !stopped || ctx.Err() != nil {
		p.release()
		return nil, fmt.Errorf("docker: terminal in %s: reading the pid: %w", shortID(id), ctx.Err())
	}
	_, _ = p.head.Write([]byte(line))
	p.head.finish()
	switch {
	case p.head.workDirFailed():
		p.release()
		return nil, fmt.Errorf("docker: terminal in %s: entering %q: %w", shortID(id), spec.WorkDir, runtimes.ErrWorkDirNotFound)
	case err != nil && p.head.pid() == 0:
		// The stream ended before the wrapper's line: the engine can lose the output of a TTY
		// command that ends at once. The command ran and ended: a session with nothing to read.
		if _, werr := p.wait(ctx, nil); werr != nil {
			p.release()
			return nil, werr
		}
		t.out = strings.NewReader("")
		return t, nil
	case p.head.pid() == 0:
		p.release()
		return nil, fmt.Errorf("docker: terminal in %s: unexpected first line %q", shortID(id), line)
	}
	if rows > 0 && cols > 0 {
		// The size was given at creation; this covers engines older than API 1.42. A command that
		// already ended (e.g. `false`) cannot be resized, and a failure to resize leaves a usable
		// terminal: neither is a reason to refuse the session.
		if err := t.Resize(ctx, rows, cols); err != nil {
			r.log.Debug("terminal: initial resize", zap.String("container", shortID(id)), zap.Error(err))
		}
	}
	return t, nil
}

// readLine reads up to the first newline, at most maxPidLine bytes (more is not the wrapper's).
func readLine(br *bufio.Reader) (string, error) {
	var line []byte
	for len(line) <= maxPidLine {
		b, err := br.ReadByte()
		if err != nil {
			return string(line), err
		}
		line = append(line, b)
		if b == '\n' {
			return string(line), nil
		}
	}
	return string(line), errors.New("no pid line")
}

// terminal is a TTY process attached over a hijacked connection.
type terminal struct {
	p   *process
	out io.Reader // the connection, or nothing for a command that ended before its first line
}

// Read returns terminal output; io.EOF once the command has ended.
func (t *terminal) Read(b []byte) (int, error) { return t.out.Read(b) }

// Write types into the terminal.
func (t *terminal) Write(b []byte) (int, error) { return t.p.hj.Conn.Write(b) }

// Resize sets the terminal's size in character cells.
func (t *terminal) Resize(ctx context.Context, rows, cols uint) error {
	_, err := t.p.r.cli.ExecResize(ctx, t.p.execID, client.ExecResizeOptions{Height: rows, Width: cols})
	return mapErr("terminal: resize", t.p.id, err)
}

// Wait blocks until the command ends and returns its exit code.
func (t *terminal) Wait(ctx context.Context) (int, error) { return t.p.wait(ctx, nil) }

// Close kills the session's processes when the command still runs (a shell left without its
// terminal would linger otherwise) and releases the connection. It is safe to call more than once.
func (t *terminal) Close() error {
	t.p.release()
	return nil
}
