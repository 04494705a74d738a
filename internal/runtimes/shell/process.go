package shell

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

	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/runtimes"
)

// How the orchestrator's processes inside a sandbox run and are stopped.
//
// Everything we start in a sandbox — a user's command, a file helper script, a terminal — is a
// *process: one Session under the same wrapper, stopped the same way on every way out. Drivers have
// no API to signal or kill a process they exec'd, and closing its stream does not stop it (a
// `cat /dev/zero` whose reader left runs on for good, and the engine burns CPU draining it). What
// the runtimes guarantee (runc makes every exec'd process a session and process-group leader) is
// enough when we know that process's pid inside the sandbox: the wrapper enters the work
// directory, prints its own pid ($$) as the first line of stdout and then execs the argv in place,
// so the pid is the command's pid, its process group and its session. Killing is a second process,
// run as root, that SIGKILLs the process group and then every process still in that group or
// session (children that made a process group of their own, as shells with job control do). Only
// a process that started a new session (setsid, daemons) escapes. The wrapper's line is stripped
// from the output the caller sees.
//
// The kill runs on a context of its own whose deadline starts when the kill starts: a command
// whose caller's context ended long ago (a stalled reader cut after 30 s) is still killed.
const (
	// wrapper is run as `/bin/sh -c wrapper sh WORKDIR argv...`. It enters WORKDIR itself (when
	// not empty) rather than through the runtime's working directory, whose failure surfaces as
	// the OCI runtime's raw text on stdout with status 126: noWorkDirLine on the first line says
	// it failed. It first makes itself (and so the command) the OOM killer's first choice: an
	// exec that runs the sandbox out of memory is what gets killed, never the sandbox's main
	// process with it (raising one's own oom_score_adj needs no capability).
	wrapper = `{ echo 1000 >/proc/self/oom_score_adj; } 2>/dev/null
[ -z "$1" ] || cd -- "$1" 2>/dev/null || { echo '!cwd'; exit 1; }
shift
echo "$$"
exec "$@"`

	// noWorkDirLine is what the wrapper prints in place of its pid when it cannot enter WORKDIR.
	noWorkDirLine = "!cwd"

	// killScript is run as `/bin/sh -c killScript sh PID`. It needs nothing but sh builtins, so it
	// works in any image with a POSIX shell. A few rounds catch processes forked while it ran. It
	// ends by itself, so it is the one process that runs without the wrapper. It says on stdout
	// whether anything is left ("ok" or "left"), so that its outcome is known when its output
	// ends: Docker reports an exec's exit status only once it has processed the exit of the
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
	// stderrKeep bounds the stderr kept from internal helper commands for error messages.
	stderrKeep = 4 << 10
)

// process is one command started in a sandbox under the wrapper. Whoever starts one must call
// release on every way out; the output (with the wrapper's line) must go through head.
type process struct {
	r    *Runner
	op   string          // what it is for, in errors and logs: "exec", "read file", ...
	id   string          // the sandbox
	ctx  context.Context // the starter's values without its cancellation, for cleanup calls
	s    Session
	head *pidLine

	ended    atomic.Bool // its exit was observed: nothing left to kill
	killed   atomic.Bool // a kill was issued
	killOnce sync.Once
	relOnce  sync.Once
}

// start starts cmd under the wrapper, entering workDir first (empty: the sandbox's). stdout
// receives the output after the wrapper's line; onStart (may be nil) is called when that line
// shows the command runs.
func (r *Runner) start(ctx context.Context, op, id string, cmd Command, workDir string, stdout io.Writer,
	onStart func()) (*process, error) {
	cmd.Argv = append([]string{"/bin/sh", "-c", wrapper, "sh", workDir}, cmd.Argv...)
	s, err := r.startSession(ctx, op, id, cmd)
	if err != nil {
		return nil, err
	}
	return &process{r: r, op: op, id: id, ctx: context.WithoutCancel(ctx), s: s, head: newPidLine(stdout, onStart)}, nil
}

// startSession asks the driver to start cmd; an empty id names no sandbox.
func (r *Runner) startSession(ctx context.Context, op, id string, cmd Command) (Session, error) {
	if id == "" {
		return nil, fmt.Errorf("%s: %s: empty id: %w", r.name, op, runtimes.ErrNotFound)
	}
	return r.st.Start(ctx, op, id, cmd)
}

// pump copies the output until the stream ends: stdout through head, stderr to stderr. Whatever
// happens, head is finished afterwards, so a kill never waits for a pid line that cannot come.
func (p *process) pump(stderr io.Writer) error {
	defer p.head.finish()
	return p.s.Copy(p.head, stderr)
}

// pumping is a pump running in the background: done is closed when it has returned, and err,
// read after done, is what it returned.
type pumping struct {
	done chan struct{}
	err  error
}

// startPump runs pump in the background.
func (p *process) startPump(stderr io.Writer) *pumping {
	pm := &pumping{done: make(chan struct{})}
	go pm.run(p, stderr)
	return pm
}

func (pm *pumping) run(p *process, stderr io.Writer) {
	defer close(pm.done)
	pm.err = p.pump(stderr)
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
			p.r.log.Warn(p.op+": no pid to kill; the command may keep running", zap.String("sandbox", p.r.shortID(p.id)))
			return
		}
		ctx, cancel := context.WithTimeout(p.ctx, cleanup())
		defer cancel()
		if err := p.r.killTree(ctx, p.id, pid); err != nil {
			p.r.log.Warn(p.op+": could not kill the command's processes", zap.String("sandbox", p.r.shortID(p.id)),
				zap.Int("pid", pid), zap.Error(err))
		}
	})
}

// exit is what Session.Wait returned.
type exit struct {
	code int
	err  error
}

// wait waits until the process has ended and returns its exit code. When stop is closed while it
// still runs, the process tree is killed and the wait goes on for at most the cleanup timeout from
// then. When giveUp ends first, it returns giveUp's error and leaves the process be.
func (p *process) wait(giveUp context.Context, stop <-chan struct{}) (int, error) {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	exited := make(chan exit, 1)
	go func() {
		code, err := p.s.Wait(ctx)
		exited <- exit{code, err}
	}()
	var deadline <-chan time.Time
	for {
		select {
		case e := <-exited:
			if e.err != nil {
				return -1, e.err
			}
			p.ended.Store(true)
			return e.code, nil
		case <-giveUp.Done():
			return -1, p.r.errorf(p.op, p.id, "%w", giveUp.Err())
		case <-stop:
			// Docker marks an exec ended only once its output is drained: with nobody reading
			// the stream any more, it must be cut for the killed process to be seen gone.
			p.s.Close()
			p.kill()
			stop, deadline = nil, time.After(cleanup())
		case <-deadline:
			return -1, p.r.errorf(p.op, p.id, "the command still runs %s after it was killed", cleanup())
		}
	}
}

// release ends the process's life on our side, whatever the way out: the session is closed (its
// output is no longer wanted, and undrained output would keep the runtime from seeing it end),
// and a process that has not ended within endGrace is killed with its tree. Safe to call more
// than once and concurrently.
func (p *process) release() {
	p.relOnce.Do(func() {
		p.s.Close()
		if p.ended.Load() {
			return
		}
		grace := make(chan struct{})
		t := time.AfterFunc(endGrace, func() { close(grace) })
		defer t.Stop()
		if _, err := p.wait(p.ctx, grace); err != nil {
			p.r.log.Warn(p.op+": ending the command", zap.String("sandbox", p.r.shortID(p.id)), zap.Error(err))
		}
	})
}

// killTree SIGKILLs the process group and session led by pid (see killScript). It retries a few
// times, since a sandbox at its pids limit (a fork bomb) can refuse the killer its own process.
func (r *Runner) killTree(ctx context.Context, id string, pid int) error {
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

// runKiller runs killScript once and reads its verdict. It is the one process without the
// wrapper: it ends by itself, and killing the killer would need a killer.
func (r *Runner) runKiller(ctx context.Context, id string, pid int) error {
	s, err := r.startSession(ctx, "kill", id, Command{
		Killer: true,
		Argv:   []string{"/bin/sh", "-c", killScript, "sh", strconv.Itoa(pid)},
	})
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	stdout := &limitedBuffer{max: 64, truncate: true}
	stderr := &limitedBuffer{max: stderrKeep, truncate: true}
	if err := s.Copy(stdout, stderr); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return r.errorf("kill", id, "%w", err)
	}
	switch verdict := string(bytes.TrimSpace(stdout.Bytes())); verdict {
	case "ok":
		return nil
	case "left":
		return r.errorf("kill", id, "processes of %d still run after five rounds", pid)
	default:
		// The killer could not run (a sandbox at its pids limit refuses it a process).
		return r.errorf("kill", id, "the killer ended without a verdict: %s", bytes.TrimSpace(stderr.Bytes()))
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
	// The bound holds however the line was chunked: a long line that came whole is no more ours.
	if len(p.buf) > maxPidLine {
		p.buf = append(p.buf, '\n')
	} else if v, err := strconv.Atoi(line); err == nil && v > 0 {
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
