package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/shell"
)

// Exec, files and terminals are the shell package's (shell.Runner, which Runtime embeds), over
// the engine's exec API: this file is that API's side.

var (
	_ runtimes.Interactive = (*Runtime)(nil)
	_ shell.Starter        = starter{}
)

// inspectTimeout bounds one status query to the engine.
const inspectTimeout = 10 * time.Second

// rootUser runs the killer (shell.Command.Killer) as root whatever the image's USER, by number so
// an image without /etc/passwd works too.
const rootUser = "0"

// starter starts shell.Runner's processes as execs.
type starter struct{ r *Runtime }

// Start creates and starts an exec, attached. The engine refuses (409) to exec in a paused or
// stopped container: that becomes a *runtimes.NotRunningError saying what the container is.
func (s starter) Start(ctx context.Context, op, id string, cmd shell.Command) (shell.Session, error) {
	r := s.r
	if cmd.Killer {
		cmd.User = rootUser
	}
	opts := client.ExecCreateOptions{
		User:         cmd.User,
		TTY:          cmd.TTY,
		AttachStdin:  cmd.Stdin,
		AttachStdout: true,
		AttachStderr: true,
		Env:          cmd.Env,
		Cmd:          cmd.Argv,
	}
	if cmd.TTY {
		opts.ConsoleSize = client.ConsoleSize{Height: cmd.Rows, Width: cmd.Cols} // honoured from API 1.42
	}
	created, err := r.cli.ExecCreate(ctx, id, opts)
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return nil, fmt.Errorf("docker: %s in %s: %w (%w)", op, shortID(id), r.whyNotRunning(ctx, id), err)
		}
		return nil, mapErr(op, id, err)
	}
	hj, err := r.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: opts.TTY, ConsoleSize: opts.ConsoleSize})
	if err != nil {
		// A container paused or stopped between create and start is refused with a bare status
		// code here: ask the container what happened.
		if nr := r.whyNotRunning(ctx, id); nr.State != runtimes.StateUnknown {
			return nil, fmt.Errorf("docker: %s in %s: %w (%w)", op, shortID(id), nr, err)
		}
		return nil, mapErr(op+": attach", id, err)
	}
	return &session{r: r, op: op, id: id, execID: created.ID, tty: cmd.TTY, hj: hj.HijackedResponse}, nil
}

// session is an exec with its hijacked connection.
type session struct {
	r      *Runtime
	op, id string
	execID string
	tty    bool
	hj     client.HijackedResponse
}

// Copy demultiplexes the connection (a TTY's is one raw stream).
func (s *session) Copy(stdout, stderr io.Writer) error {
	if s.tty {
		_, err := io.Copy(stdout, s.hj.Reader)
		return err
	}
	_, err := stdcopy.StdCopy(stdout, stderr, s.hj.Reader)
	return err
}

func (s *session) Write(p []byte) (int, error) { return s.hj.Conn.Write(p) }

func (s *session) CloseStdin() error { return s.hj.CloseWrite() }

func (s *session) Close() error {
	s.hj.Close()
	return nil
}

// Wait polls the exec until it has ended: the engine tells an exec's end only when asked.
func (s *session) Wait(ctx context.Context) (int, error) {
	delay := 5 * time.Millisecond
	for {
		inspectCtx, cancel := context.WithTimeout(ctx, inspectTimeout)
		res, err := s.r.cli.ExecInspect(inspectCtx, s.execID, client.ExecInspectOptions{})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return -1, fmt.Errorf("docker: %s in %s: %w", s.op, shortID(s.id), ctx.Err())
			}
			return -1, mapErr(s.op+": inspect", s.id, err)
		}
		if !res.Running {
			return res.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("docker: %s in %s: %w", s.op, shortID(s.id), ctx.Err())
		case <-time.After(delay):
			delay = min(2*delay, 100*time.Millisecond)
		}
	}
}

func (s *session) Resize(ctx context.Context, rows, cols uint) error {
	_, err := s.r.cli.ExecResize(ctx, s.execID, client.ExecResizeOptions{Height: rows, Width: cols})
	return mapErr("terminal: resize", s.id, err)
}

// whyNotRunning reads what keeps anything from running in the container: paused, or stopped (with
// its main process's exit status, and whether the OOM killer ended it). State is StateUnknown
// when the container cannot be inspected or runs after all (it was resumed meanwhile).
func (r *Runtime) whyNotRunning(ctx context.Context, id string) *runtimes.NotRunningError {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), inspectTimeout)
	defer cancel()
	nr := &runtimes.NotRunningError{State: runtimes.StateUnknown}
	res, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || res.Container.State == nil {
		return nr
	}
	s := res.Container.State
	switch state := mapState(s.Status); state {
	case runtimes.StateRunning, runtimes.StateUnknown:
	case runtimes.StateExited:
		nr.State, nr.ExitCode, nr.OOMKilled = state, s.ExitCode, s.OOMKilled
	default:
		nr.State = state
	}
	return nr
}

// oomGrace is how long after a command's end the engine may take to report an out-of-memory kill
// that caused it: the event comes from the kernel's cgroup notification, apart from the exit.
const oomGrace = 500 * time.Millisecond

// OOMKilledSince asks the engine whether the kernel's OOM killer struck in the container since t
// (its past events, up to oomGrace from now). A query that fails is logged and answers false.
func (s starter) OOMKilledSince(ctx context.Context, id string, t time.Time) bool {
	r := s.r
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), inspectTimeout)
	defer cancel()
	f := client.Filters{}
	f.Add("type", "container")
	f.Add("container", id)
	f.Add("event", "oom")
	stamp := func(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }
	ev := r.cli.Events(ctx, client.EventsListOptions{Since: stamp(t), Until: stamp(time.Now().Add(oomGrace)), Filters: f})
	for {
		select {
		case <-ev.Messages:
			return true
		case err := <-ev.Err:
			if err != nil && !errors.Is(err, io.EOF) {
				r.log.Warn("exec: could not ask the engine about an OOM kill", zap.String("container", shortID(id)), zap.Error(err))
			}
			return false
		}
	}
}
