package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/runtimes"
)

// How the orchestrator's processes inside a sandbox run and are stopped.
//
// Everything we start in a sandbox — a user's command, a file helper script, a terminal — is a
// *process: one exec under the same wrapper, stopped the same way on every way out. The engine
// has no API to signal or kill an exec'd process, and closing the attached stream does not stop
// it (a `cat /dev/zero` whose reader left runs on for good, and dockerd burns CPU draining it).
// What the engine does guarantee (runc makes every exec'd process a session and process-group
// leader) is enough when we know that process's pid inside the sandbox: the wrapper enters the
// work directory, prints its own pid ($$) as the first line of stdout and then execs the argv in
// place, so the pid is the command's pid, its process group and its session. Killing is a second
// exec, run as root, that SIGKILLs the process group and then every process still in that group
// or session (children that made a process group of their own, as shells with job control do).
// Only a process that started a new session (setsid, daemons) escapes. The wrapper's line is
// stripped from the output the caller sees.
//
// The kill runs on a context of its own whose deadline starts when the kill starts: a command
// whose caller's context ended long ago (a stalled reader cut after 30 s) is still killed.
const (
	// wrapper is run as `/bin/sh -c wrapper sh WORKDIR argv...`. It enters WORKDIR itself (when
	// not empty) rather than through the engine's WorkingDir, whose failure surfaces as the OCI
	// runtime's raw text on stdout with status 126: "!cwd" on the first line says it failed.
	wrapper = `[ -z "$1" ] || cd -- "$1" 2>/dev/null || { echo '!cwd'; exit 1; }
shift
echo "$$"
exec "$@"`

	// noWorkDirLine is what the wrapper prints in place of its pid when it cannot enter WORKDIR.
	noWorkDirLine = "!cwd"

	// killScript is run as `/bin/sh -c killScript sh PID`. It needs nothing but sh builtins, so it
	// works in any image with a POSIX shell. A few rounds catch processes forked while it ran. It
	// ends by itself, so it is the one exec that runs without the wrapper. It says on stdout
	// whether anything is left ("ok" or "left"), so that its outcome is known when its output
	// ends: its exit status is only reported once the engine has processed the exit of the
	// process it killed, which waits for that process's output to be drained.
	killScript = `target=$1
for round in 1 2 3 4 5; do
	kill -9 -- "-$target" 2>/dev/null
	left=
	for d in /proc/[0-9]*; do
		{ read -r st < "$d/stat"; } 2>/dev/null || continue
		set -- ${st##*) }
		if [ "$3" = "$target" ] || [ "$4" = "$target" ]; then
			kill -9 -- "${d#/proc/}" 2>/dev/null && left=1
		fi
	done
	[ -n "$left" ] || { echo ok; exit 0; }
done
echo left`

	// maxPidLine bounds the wrapper's first line; anything longer is not ours.
	maxPidLine = 32
	// pidWait is how long a kill waits for the wrapper's pid line that has not arrived yet.
	pidWait = 5 * time.Second
	// drainGrace is how long the output may stay open after a kill before the connection is cut:
	// a process outside the killed session can hold the output pipes open.
	drainGrace = 2 * time.Second
	// endGrace is how long a process whose caller is done with it may take to end by itself (a
	// helper that wrote its last byte is exiting) before it is killed.
	endGrace = 250 * time.Millisecond
	// inspectTimeout bounds one status query to the engine.
	inspectTimeout = 10 * time.Second
	// stderrKeep bounds the stderr kept from internal helper commands for error messages.
	stderrKeep = 4 << 10
)

// cleanupTimeout bounds a kill and the wait for the killed process to be gone, counted from the
// moment the kill starts. A variable so that tests can shorten it.
var cleanupTimeout = 15 * time.Second

// rootUser runs the killer as root whatever the image's USER, by number so an image without
// /etc/passwd works too.
const rootUser = "0"

// process is one command started in a sandbox under the wrapper. Whoever starts one must call
// release on every way out; the output (with the wrapper's line) must go through head.
type process struct {
	r      *Runtime
	op     string          // what it is for, in errors and logs: "exec", "read file", ...
	id     string          // the container
	ctx    context.Context // the starter's values without its cancellation, for cleanup calls
	execID string
	hj     client.HijackedResponse
	head   *pidLine

	ended    atomic.Bool // its exit was observed: nothing left to kill
	killed   atomic.Bool // a kill was issued
	killOnce sync.Once
	relOnce  sync.Once
}

// startProcess creates and starts an exec of opts.Cmd under the wrapper, attached, entering
// workDir first (empty: the container's). stdout receives the output after the wrapper's line;
// onStart (may be nil) is called when that line shows the command runs. The engine refuses (409)
// to exec in a paused or stopped container: that becomes a *runtimes.NotRunningError.
func (r *Runtime) startProcess(ctx context.Context, op, id string, opts client.ExecCreateOptions, workDir string,
	stdout io.Writer, onStart func()) (*process, error) {
	opts.Cmd = append([]string{"/bin/sh", "-c", wrapper, "sh", workDir}, opts.Cmd...)
	opts.WorkingDir = ""
	s, err := r.startExec(ctx, op, id, opts)
	if err != nil {
		return nil, err
	}
	p := &process{r: r, op: op, id: id, ctx: context.WithoutCancel(ctx), execID: s.execID, hj: s.hj}
	p.head = newPidLine(stdout, onStart)
	return p, nil
}

// pump copies the output until the stream ends: stdout through head, stderr to stderr (a TTY has
// one stream). Whatever happens, head is finished afterwards, so a kill never waits for a pid
// line that cannot come.
func (p *process) pump(tty bool, stderr io.Writer) error {
	defer p.head.finish()
	if tty {
		_, err := io.Copy(p.head, p.hj.Reader)
		return err
	}
	_, err := stdcopy.StdCopy(p.head, stderr, p.hj.Reader)
	return err
}

// pumping is a pump running in the background: done is closed when it has returned, and err,
// read after done, is what it returned.
type pumping struct {
	done chan struct{}
	err  error
}

// startPump runs pump in the background.
func (p *process) startPump(tty bool, stderr io.Writer) *pumping {
	pm := &pumping{done: make(chan struct{})}
	go pm.run(p, tty, stderr)
	return pm
}

func (pm *pumping) run(p *process, tty bool, stderr io.Writer) {
	defer close(pm.done)
	pm.err = p.pump(tty, stderr)
}

// kill SIGKILLs the process tree, once, waiting first (at most pidWait) for the pid if its line
// has not been read yet. It runs on a deadline of its own, counted from now.
func (p *process) kill() {
	p.killOnce.Do(func() {
		p.killed.Store(true)
		select {
		case <-p.head.known:
		case <-time.After(pidWait):
		}
		pid := p.head.pid()
		if pid <= 0 {
			p.r.log.Warn(p.op+": no pid to kill; the command may keep running", zap.String("container", shortID(p.id)))
			return
		}
		ctx, cancel := context.WithTimeout(p.ctx, cleanupTimeout)
		defer cancel()
		if err := p.r.killTree(ctx, p.id, pid); err != nil {
			p.r.log.Warn(p.op+": could not kill the command's processes", zap.String("container", shortID(p.id)),
				zap.Int("pid", pid), zap.Error(err))
		}
	})
}

// wait polls until the exec has ended and returns its exit code. When stop is closed while it
// still runs, the process tree is killed and the wait goes on for at most cleanupTimeout from
// then. When giveUp ends first, it returns giveUp's error and leaves the process be.
func (p *process) wait(giveUp context.Context, stop <-chan struct{}) (int, error) {
	delay := 5 * time.Millisecond
	var deadline <-chan time.Time
	for {
		ctx, cancel := context.WithTimeout(p.ctx, inspectTimeout)
		res, err := p.r.cli.ExecInspect(ctx, p.execID, client.ExecInspectOptions{})
		cancel()
		if err != nil {
			return -1, mapErr(p.op+": inspect", p.id, err)
		}
		if !res.Running {
			p.ended.Store(true)
			return res.ExitCode, nil
		}
		select {
		case <-giveUp.Done():
			return -1, fmt.Errorf("docker: %s in %s: %w", p.op, shortID(p.id), giveUp.Err())
		case <-stop:
			// The engine marks an exec ended only once its output is drained: with nobody
			// reading the stream any more, it must be cut for the killed process to be seen gone.
			p.hj.Close()
			p.kill()
			stop, deadline = nil, time.After(cleanupTimeout)
		case <-deadline:
			return -1, fmt.Errorf("docker: %s in %s: the command still runs %s after it was killed", p.op, shortID(p.id), cleanupTimeout)
		case <-time.After(delay):
			delay = min(2*delay, 100*time.Millisecond)
		}
	}
}

// release ends the process's life on our side, whatever the way out: the connection is closed
// (its output is no longer wanted, and undrained output would keep the engine from seeing it
// end), and a process that has not ended within endGrace is killed with its tree. Safe to call
// more than once and concurrently.
func (p *process) release() {
	p.relOnce.Do(func() {
		p.hj.Close()
		if p.ended.Load() {
			return
		}
		grace := make(chan struct{})
		t := time.AfterFunc(endGrace, func() { close(grace) })
		defer t.Stop()
		if _, err := p.wait(p.ctx, grace); err != nil {
			p.r.log.Warn(p.op+": ending the command", zap.String("container", shortID(p.id)), zap.Error(err))
		}
	})
}

// execSession is a started exec with its hijacked stream.
type execSession struct {
	execID string
	hj     client.HijackedResponse
}

// startExec creates and starts an exec, attached. The engine refuses (409) to exec in a paused or
// stopped container: that becomes a *runtimes.NotRunningError saying what the container is.
func (r *Runtime) startExec(ctx context.Context, op, id string, opts client.ExecCreateOptions) (*execSession, error) {
	if id == "" {
		return nil, emptyID(op)
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
	return &execSession{execID: created.ID, hj: hj.HijackedResponse}, nil
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

// killTree SIGKILLs the process group and session led by pid (see killScript). It retries a few
// times, since a sandbox at its pids limit (a fork bomb) can refuse the killer its own process.
func (r *Runtime) killTree(ctx context.Context, id string, pid int) error {
	var err error
	for attempt := range 5 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		err = r.runKiller(ctx, id, pid)
		if err == nil || errors.Is(err, runtimes.ErrNotFound) || errors.Is(err, runtimes.ErrNotRunning) {
			return err
		}
	}
	return err
}

// runKiller runs killScript once and reads its verdict. It is the one exec without the wrapper:
// it ends by itself, and killing the killer would need a killer.
func (r *Runtime) runKiller(ctx context.Context, id string, pid int) error {
	s, err := r.startExec(ctx, "kill", id, client.ExecCreateOptions{
		User:         rootUser,
		AttachStdout: true,
		AttachStderr: true,
		Cmd:          []string{"/bin/sh", "-c", killScript, "sh", strconv.Itoa(pid)},
	})
	if err != nil {
		return err
	}
	defer s.hj.Close()
	stop := context.AfterFunc(ctx, func() { s.hj.Close() })
	defer stop()
	stdout := &limitedBuffer{max: 64, truncate: true}
	stderr := &limitedBuffer{max: stderrKeep, truncate: true}
	if _, err := stdcopy.StdCopy(stdout, stderr, s.hj.Reader); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("docker: kill in %s: %w", shortID(id), err)
	}
	switch verdict := string(bytes.TrimSpace(stdout.Bytes())); verdict {
	case "ok":
		return nil
	case "left":
		return fmt.Errorf("docker: kill in %s: processes of %d still run after five rounds", shortID(id), pid)
	default:
		// The killer could not run (a sandbox at its pids limit refuses it a process).
		return fmt.Errorf("docker: kill in %s: the killer ended without a verdict: %s", shortID(id), bytes.TrimSpace(stderr.Bytes()))
	}
}

// pidLine reads the wrapper's first stdout line (the command's pid, or noWorkDirLine) and passes
// everything after it on. known is closed once the line is read, or when the output ends without
// one; onStart runs first when the line is a pid.
type pidLine struct {
	next      io.Writer
	onStart   func()
	buf       []byte
	done      bool
	value     int
	noWorkDir bool
	known     chan struct{}
}

func newPidLine(next io.Writer, onStart func()) *pidLine {
	return &pidLine{next: next, onStart: onStart, known: make(chan struct{})}
}

func (p *pidLine) Write(b []byte) (int, error) {
	if p.done {
		return p.next.Write(b)
	}
	n := len(b)
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		p.buf = append(p.buf, b...)
		if len(p.buf) > maxPidLine {
			// Not our line (the wrapper did not run as expected): pass it all on.
			p.finish()
		}
		return n, nil
	}
	p.buf = append(p.buf, b[:i]...)
	line := string(bytes.TrimSpace(p.buf))
	if v, err := strconv.Atoi(line); err == nil && v > 0 {
		p.value = v
		p.buf = nil
	} else if line == noWorkDirLine {
		p.noWorkDir = true
		p.buf = nil
	} else {
		p.buf = append(p.buf, '\n')
	}
	p.finish()
	if _, err := p.next.Write(b[i+1:]); err != nil {
		return n, err
	}
	return n, nil
}

// finish stops looking for the pid line, passing on any bytes that turned out not to be one.
// Called by the writing goroutine only.
func (p *pidLine) finish() {
	if p.done {
		return
	}
	p.done = true
	if p.value > 0 && p.onStart != nil {
		p.onStart()
	}
	close(p.known)
	if len(p.buf) > 0 {
		_, _ = p.next.Write(p.buf)
		p.buf = nil
	}
}

// pid is the command's pid, 0 when unknown. Safe to call once known is closed.
func (p *pidLine) pid() int {
	select {
	case <-p.known:
		return p.value
	default:
		return 0
	}
}

// workDirFailed reports whether the wrapper could not enter the work directory. Safe to call
// once known is closed.
func (p *pidLine) workDirFailed() bool {
	select {
	case <-p.known:
		return p.noWorkDir
	default:
		return false
	}
}
