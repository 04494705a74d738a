package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/runtimes"
)

var _ runtimes.Interactive = (*Runtime)(nil)

// How commands run and are stopped.
//
// The engine has no API to signal or kill an exec'd process. What it does guarantee (runc makes
// every exec'd process a session and process-group leader) is enough when we know that process's
// pid inside the sandbox: a small sh wrapper prints its own pid ($$) as the first line of stdout
// and then execs the user's argv in place, so the pid is the command's pid, its process group and
// its session. Killing is a second exec, run as root, that SIGKILLs the process group and then
// every process still in that group or session (children that made a process group of their own,
// as shells with job control do). Only a process that started a new session (setsid, daemons)
// escapes. The wrapper's line is stripped from the output the caller sees.
const (
	// pidWrapper is run as `/bin/sh -c pidWrapper sh argv...`.
	pidWrapper = `echo "$$"; exec "$@"`

	// killScript is run as `/bin/sh -c killScript sh PID`. It needs nothing but sh builtins, so it
	// works in any image with a POSIX shell. A few rounds catch processes forked while it ran.
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
	[ -n "$left" ] || exit 0
done`

	// maxPidLine bounds the wrapper's first line; anything longer is not ours.
	maxPidLine = 32
	// pidWait is how long a kill waits for the wrapper's pid line that has not arrived yet.
	pidWait = 5 * time.Second
	// drainGrace is how long the output may stay open after a kill before the connection is cut:
	// a process outside the killed session can hold the output pipes open.
	drainGrace = 2 * time.Second
	// cleanupTimeout bounds the kill and the final inspection once the caller's ctx has ended.
	cleanupTimeout = 15 * time.Second
	// stderrKeep bounds the stderr kept from internal helper commands for error messages.
	stderrKeep = 4 << 10
)

// rootUser runs helper commands (the killer) as root whatever the image's USER, by number so an
// image without /etc/passwd works too.
const rootUser = "0"

// Exec runs spec.Cmd inside the sandbox; see runtimes.Interactive for the contract.
func (r *Runtime) Exec(ctx context.Context, id string, spec runtimes.ExecSpec, stdout, stderr io.Writer,
	timeout time.Duration, maxOutput int64) (runtimes.ExecResult, error) {
	res := runtimes.ExecResult{ExitCode: -1}
	opts, err := execOptions(spec)
	if err != nil {
		return res, err
	}
	opts.AttachStdin = spec.Stdin != nil
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}

	start := time.Now()
	s, err := r.startExec(ctx, "exec", id, opts)
	if err != nil {
		return res, err
	}
	defer s.hj.Close()

	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()

	// Output: one goroutine demultiplexes the stream into the caller's writers through a shared
	// byte budget; the pid line is taken off the front of stdout first.
	out := &outputBudget{left: maxOutput, unlimited: maxOutput <= 0}
	pid := newPidLine(out.writer(stdout))
	pumpDone := make(chan struct{})
	var pumpErr error
	go func() {
		defer close(pumpDone)
		if spec.TTY {
			_, pumpErr = io.Copy(pid, s.hj.Reader)
		} else {
			_, pumpErr = stdcopy.StdCopy(pid, out.writer(stderr), s.hj.Reader)
		}
		pid.finish()
	}()

	if spec.Stdin != nil {
		// Input waits for the pid line: under a TTY, the echo of early input would come before it.
		// A Read of Stdin in progress when Exec returns completes later and is discarded.
		go func() {
			select {
			case <-pid.known:
			case <-pumpDone:
				return
			}
			if _, err := io.Copy(s.hj.Conn, spec.Stdin); err != nil || spec.TTY {
				// A terminal has no end of input (a ^D in Stdin is what a program sees as one),
				// and the engine stops forwarding a TTY's output once its input is closed.
				return
			}
			_ = s.hj.CloseWrite()
		}()
	}

	killed := false
	var ctxErr error
	cleanupCtx, cleanupCancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cleanupCancel()
	kill := func() {
		if killed {
			return
		}
		killed = true
		if ctxErr = ctx.Err(); ctxErr == nil {
			res.TimedOut = true
		}
		select {
		case <-pid.known:
		case <-pumpDone:
		case <-time.After(pidWait):
		}
		if p := pid.pid(); p > 0 {
			if err := r.killTree(cleanupCtx, id, p); err != nil {
				r.log.Warn("exec: could not kill the command's processes", zap.String("container", shortID(id)),
					zap.Int("pid", p), zap.Error(err))
			}
		} else {
			r.log.Warn("exec: no pid to kill; the command may keep running", zap.String("container", shortID(id)))
		}
	}

	select {
	case <-pumpDone:
	case <-runCtx.Done():
		kill()
		select {
		case <-pumpDone:
		case <-time.After(drainGrace):
			s.hj.Close()
			<-pumpDone
		}
	}
	s.hj.Close()

	code, waitErr := r.waitExec(cleanupCtx, s.execID, runCtx.Done(), kill)
	res.Duration = time.Since(start)
	res.Truncated = out.truncated
	if waitErr == nil {
		res.ExitCode = code
	}
	switch {
	case ctxErr != nil:
		return res, fmt.Errorf("docker: exec in %s: %w", shortID(id), ctxErr)
	case waitErr != nil && killed && errors.Is(waitErr, context.DeadlineExceeded):
		return res, fmt.Errorf("docker: exec in %s: the command still runs %s after it was killed", shortID(id), cleanupTimeout)
	case waitErr != nil:
		return res, mapErr("exec: inspect", id, waitErr)
	case pumpErr != nil && !killed:
		return res, fmt.Errorf("docker: exec in %s: reading output: %w", shortID(id), pumpErr)
	case out.writeErr != nil:
		return res, fmt.Errorf("docker: exec in %s: writing output: %w", shortID(id), out.writeErr)
	}
	return res, nil
}

// execOptions turns a driver-neutral ExecSpec into the engine's options, wrapping argv so that its
// pid is reported (see pidWrapper).
func execOptions(spec runtimes.ExecSpec) (client.ExecCreateOptions, error) {
	if len(spec.Cmd) == 0 || spec.Cmd[0] == "" {
		return client.ExecCreateOptions{}, errors.New("docker: exec: empty command")
	}
	env, err := envList(spec.Env)
	if err != nil {
		return client.ExecCreateOptions{}, fmt.Errorf("docker: exec: %w", err)
	}
	cmd := append([]string{"/bin/sh", "-c", pidWrapper, "sh"}, spec.Cmd...)
	return client.ExecCreateOptions{
		User:         spec.User,
		TTY:          spec.TTY,
		AttachStdout: true,
		AttachStderr: true,
		Env:          env,
		WorkingDir:   spec.WorkDir,
		Cmd:          cmd,
	}, nil
}

// execSession is a started exec with its hijacked stream.
type execSession struct {
	execID string
	hj     client.HijackedResponse
}

// startExec creates and starts an exec, attached. The engine refuses (409) to exec in a paused or
// stopped container: that becomes ErrNotRunning.
func (r *Runtime) startExec(ctx context.Context, op, id string, opts client.ExecCreateOptions) (*execSession, error) {
	if id == "" {
		return nil, emptyID(op)
	}
	created, err := r.cli.ExecCreate(ctx, id, opts)
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return nil, fmt.Errorf("docker: %s in %s: %w: %w", op, shortID(id), runtimes.ErrNotRunning, err)
		}
		return nil, mapErr(op, id, err)
	}
	hj, err := r.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: opts.TTY, ConsoleSize: opts.ConsoleSize})
	if err != nil {
		// A container paused or stopped between create and start is refused with a bare status
		// code here: ask the container what happened.
		if info, ierr := r.Inspect(ctx, id); ierr == nil && info.State != runtimes.StateRunning {
			return nil, fmt.Errorf("docker: %s in %s: container is %s: %w", op, shortID(id), info.State, runtimes.ErrNotRunning)
		}
		return nil, mapErr(op+": attach", id, err)
	}
	return &execSession{execID: created.ID, hj: hj.HijackedResponse}, nil
}

// waitExec polls until the exec has ended and returns its exit code. When stop is closed while it
// still runs, onStop is called (once is enough: it is idempotent) and polling goes on.
func (r *Runtime) waitExec(ctx context.Context, execID string, stop <-chan struct{}, onStop func()) (int, error) {
	delay := 5 * time.Millisecond
	for {
		res, err := r.cli.ExecInspect(ctx, execID, client.ExecInspectOptions{})
		if err != nil {
			return -1, err
		}
		if !res.Running {
			return res.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-stop:
			if onStop != nil {
				onStop()
				onStop = nil
			}
			stop = nil
		case <-time.After(delay):
			delay = min(2*delay, 100*time.Millisecond)
		}
	}
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
		var run scriptResult
		run, err = r.runScript(ctx, "kill", id, rootUser, killScript, []string{strconv.Itoa(pid)}, nil, 0)
		if err == nil && run.code != 0 {
			err = fmt.Errorf("killer exited with %d: %s", run.code, bytes.TrimSpace(run.stderr))
		}
		if err == nil || errors.Is(err, runtimes.ErrNotFound) || errors.Is(err, runtimes.ErrNotRunning) {
			return err
		}
	}
	return err
}

// scriptResult is how an internal helper script ended.
type scriptResult struct {
	code   int
	stdout []byte
	stderr []byte // the first stderrKeep bytes
}

// runScript runs `/bin/sh -c script sh args...` without the pid wrapper, feeding its stdin (when
// feed is not nil) from feed, and collects up to maxStdout bytes of stdout (more is an error; 0:
// stdout is discarded). It is for internal commands whose output is small; a non-zero exit code is
// reported in the result, not as an error.
func (r *Runtime) runScript(ctx context.Context, op, id, user, script string, args []string,
	feed func(w io.Writer) error, maxStdout int64) (scriptResult, error) {
	opts := client.ExecCreateOptions{
		User:         user,
		AttachStdin:  feed != nil,
		AttachStdout: true,
		AttachStderr: true,
		Cmd:          append([]string{"/bin/sh", "-c", script, "sh"}, args...),
	}
	s, err := r.startExec(ctx, op, id, opts)
	if err != nil {
		return scriptResult{code: -1}, err
	}
	defer s.hj.Close()
	// The hijacked connection does not follow ctx once established.
	stopClose := context.AfterFunc(ctx, func() { s.hj.Close() })
	defer stopClose()

	// feedErr receives the feeder's error before the stream is cut, so whoever sees the cut also
	// finds its cause.
	feedErr := make(chan error, 1)
	if feed != nil {
		go func() {
			err := feed(s.hj.Conn)
			if err == nil {
				err = s.hj.CloseWrite()
			}
			feedErr <- err
			if err != nil {
				// Cut the stream so the script sees its input end short.
				s.hj.Close()
			}
		}()
	}
	fed := func() error {
		select {
		case err := <-feedErr:
			feedErr <- err
			return err
		default:
			return nil
		}
	}

	var stdout io.Writer = io.Discard
	var kept *limitedBuffer
	if maxStdout > 0 {
		kept = &limitedBuffer{max: maxStdout}
		stdout = kept
	}
	stderr := &limitedBuffer{max: stderrKeep, truncate: true}
	_, copyErr := stdcopy.StdCopy(stdout, stderr, s.hj.Reader)
	// The script has closed its output (it has ended, normally). Its input is no longer needed: a
	// feeder still blocked writing fails now instead of waiting for the script's exit to reach it.
	s.hj.Close()
	fail := func(err error) (scriptResult, error) {
		return scriptResult{code: -1}, fmt.Errorf("docker: %s in %s: %w", op, shortID(id), err)
	}
	switch {
	case fed() != nil:
		return fail(fed())
	case ctx.Err() != nil:
		return fail(ctx.Err())
	case copyErr != nil:
		return fail(fmt.Errorf("reading output: %w", copyErr))
	}
	code, err := r.waitExec(ctx, s.execID, nil, nil)
	if err != nil {
		return scriptResult{code: -1}, mapErr(op+": inspect", id, err)
	}
	if feed != nil && code == 0 {
		// A script that succeeded has read all its input, so the feeder is done or about to be.
		select {
		case err := <-feedErr:
			if err != nil {
				return fail(err)
			}
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	res := scriptResult{code: code, stderr: stderr.Bytes()}
	if kept != nil {
		res.stdout = kept.Bytes()
	}
	return res, nil
}

// limitedBuffer keeps at most max bytes. Past that it either drops the rest (truncate) or fails
// the write, which stops the copy.
type limitedBuffer struct {
	bytes.Buffer
	max      int64
	truncate bool
}

var errOutputTooLarge = errors.New("output too large")

func (b *limitedBuffer) Write(p []byte) (int, error) {
	room := b.max - int64(b.Len())
	if int64(len(p)) <= room {
		return b.Buffer.Write(p)
	}
	if !b.truncate {
		return 0, errOutputTooLarge
	}
	if room > 0 {
		b.Buffer.Write(p[:room])
	}
	return len(p), nil
}

// outputBudget shares a byte budget between the stdout and stderr of one command. Writes come
// from a single goroutine (the demultiplexer), so it needs no lock.
type outputBudget struct {
	left      int64
	unlimited bool
	truncated bool
	writeErr  error // the first error of a caller's writer; output is discarded from then on
}

func (b *outputBudget) writer(w io.Writer) io.Writer { return &budgetWriter{b: b, w: w} }

type budgetWriter struct {
	b *outputBudget
	w io.Writer
}

// Write passes on what the budget allows and swallows the rest, never failing, so the stream
// keeps being drained and the command is never blocked on a full pipe.
func (bw *budgetWriter) Write(p []byte) (int, error) {
	b := bw.b
	keep := p
	if !b.unlimited {
		if int64(len(keep)) > b.left {
			keep = keep[:b.left]
			b.truncated = true
		}
		b.left -= int64(len(keep))
	}
	if len(keep) > 0 && b.writeErr == nil {
		if _, err := bw.w.Write(keep); err != nil {
			b.writeErr = err
		}
	}
	return len(p), nil
}

// pidLine reads the wrapper's first stdout line (the command's pid) and passes everything after
// it on. known is closed once the pid is read, or when the output ends without one.
type pidLine struct {
	next  io.Writer
	buf   []byte
	done  bool
	value int
	known chan struct{}
}

func newPidLine(next io.Writer) *pidLine {
	return &pidLine{next: next, known: make(chan struct{})}
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
	if v, err := strconv.Atoi(string(bytes.TrimSpace(p.buf))); err == nil && v > 0 {
		p.value = v
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

// randSuffix makes temporary names unique.
func randSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
