package shell

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
)

// errTimedOut is the cause of an exec's context when its timeout passes.
var errTimedOut = errors.New("timed out")

// Exec runs spec.Cmd inside the sandbox; see runtimes.Interactive for the contract.
func (r *Runner) Exec(ctx context.Context, id string, spec runtimes.ExecSpec, stdout, stderr io.Writer,
	timeout time.Duration, maxOutput int64) (runtimes.ExecResult, error) {
	cmd, err := r.command(spec)
	if err != nil {
		return runtimes.ExecResult{ExitCode: -1}, err
	}
	cmd.Stdin = spec.Stdin != nil
	e, err := r.startExecution(ctx, id, spec, cmd, stdout, timeout, maxOutput)
	if err != nil {
		return runtimes.ExecResult{ExitCode: -1}, err
	}
	defer e.close()
	pumpErr := e.stream(stderr)
	// The output has ended, but the command may run on (it closed its output): run still bounds it.
	code, waitErr := e.p.wait(e.p.ctx, e.run.Done())
	return e.result(code, waitErr, pumpErr)
}

// execution is one Exec under way: the command's process and what bounds it.
type execution struct {
	r    *Runner
	id   string
	spec runtimes.ExecSpec
	ctx  context.Context // the caller's
	// run ends when the command must stop: ctx ended, the timeout passed or a writer failed (nobody
	// reads the output any more). Its cause says which.
	run   context.Context
	stop  context.CancelCauseFunc // ends run with a cause
	out   *outputBudget
	p     *process
	start time.Time
}

// startExecution bounds the command by ctx and timeout, and starts it with its stdout going
// through the output budget.
func (r *Runner) startExecution(ctx context.Context, id string, spec runtimes.ExecSpec, cmd Command,
	stdout io.Writer, timeout time.Duration, maxOutput int64) (*execution, error) {
	run, stop := runContext(ctx, timeout)
	e := &execution{r: r, id: id, spec: spec, ctx: ctx, run: run, stop: stop, start: time.Now()}
	e.out = newOutputBudget(maxOutput, stop)
	p, err := r.start(ctx, "exec", id, cmd, spec.WorkDir, e.out.writer(stdout), spec.Started)
	if err != nil {
		stop(nil)
		return nil, err
	}
	e.p = p
	return e, nil
}

// runContext returns a context that ends when ctx does, when timeout passes (with the cause
// errTimedOut; 0: never) or when the returned function is called, with its cause.
func runContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelCauseFunc) {
	run, cancelRun := context.WithCancelCause(ctx)
	if timeout <= 0 {
		return run, cancelRun
	}
	timed, cancelTimer := context.WithTimeoutCause(run, timeout, errTimedOut)
	return timed, func(cause error) {
		cancelRun(cause)
		cancelTimer()
	}
}

// close ends the command if it still runs and frees what bounded it.
func (e *execution) close() {
	e.p.release()
	e.stop(nil)
}

// stream copies the output (and feeds the input) until the output ends, and returns the error
// that ended the copy. When run ends first the command is killed, and its output gets drainGrace
// to end before the session is closed: a process outside the killed session can hold it open.
func (e *execution) stream(stderr io.Writer) error {
	pumped := e.p.startPump(e.out.writer(stderr))
	if e.spec.Stdin != nil {
		go feedStdin(e.p, e.spec, pumped.done)
	}
	select {
	case <-pumped.done:
	case <-e.run.Done():
		e.p.kill()
		select {
		case <-pumped.done:
		case <-time.After(drainGrace):
			e.p.s.Close()
			<-pumped.done
		}
	}
	e.p.s.Close()
	return pumped.err
}

// result reports how the command ended: its exit code when known, whether it was cut short, and
// the first error that applies (see failure).
func (e *execution) result(code int, waitErr, pumpErr error) (runtimes.ExecResult, error) {
	res := runtimes.ExecResult{ExitCode: -1, Duration: time.Since(e.start), Truncated: e.out.truncated}
	if waitErr == nil {
		res.ExitCode = code
	}
	killed := e.p.killed.Load()
	res.TimedOut = killed && errors.Is(context.Cause(e.run), errTimedOut) && e.ctx.Err() == nil
	if err := e.failure(waitErr, pumpErr, killed); err != nil {
		return res, err
	}
	if code == 137 && !killed {
		res.OOMKilled = e.r.st.OOMKilledSince(e.ctx, e.id, e.start)
	}
	return res, nil
}

// failure is the error an exec ends with, in order: the caller gave up, the caller's writer
// failed, the exit status is unknown, the work directory could not be entered, or the output
// could not be read (a copy cut by our own kill is not a failure).
func (e *execution) failure(waitErr, pumpErr error, killed bool) error {
	switch {
	case e.ctx.Err() != nil:
		return e.r.errorf("exec", e.id, "%w", e.ctx.Err())
	case e.out.writeErr != nil:
		return e.r.errorf("exec", e.id, "writing output: %w", e.out.writeErr)
	case waitErr != nil:
		return waitErr
	case e.p.head.workDirFailed():
		return e.r.errorf("exec", e.id, "entering %q: %w", e.spec.WorkDir, runtimes.ErrWorkDirNotFound)
	case pumpErr != nil && !killed:
		return e.r.errorf("exec", e.id, "reading output: %w", pumpErr)
	}
	return nil
}

// feedStdin copies spec.Stdin into the command once it runs. A Read of Stdin in progress when
// Exec returns completes later and is discarded.
func feedStdin(p *process, spec runtimes.ExecSpec, pumpDone <-chan struct{}) {
	// Input waits for the pid line: under a TTY, the echo of early input would come before it.
	select {
	case <-p.head.known:
	case <-pumpDone:
		return
	}
	if _, err := io.Copy(p.s, spec.Stdin); err != nil || spec.TTY {
		// A terminal has no end of input (a ^D in Stdin is what a program sees as one), and
		// Docker stops forwarding a TTY's output once its input is closed.
		return
	}
	_ = p.s.CloseStdin()
}

// command turns a driver-neutral ExecSpec into the process to start (start adds the wrapper and
// the work directory).
func (r *Runner) command(spec runtimes.ExecSpec) (Command, error) {
	if len(spec.Cmd) == 0 || spec.Cmd[0] == "" {
		return Command{}, fmt.Errorf("%s: exec: empty command", r.name)
	}
	if spec.WorkDir != "" && !path.IsAbs(spec.WorkDir) {
		return Command{}, fmt.Errorf("%s: exec: work dir %q must be absolute", r.name, spec.WorkDir)
	}
	env, err := EnvList(spec.Env)
	if err != nil {
		return Command{}, fmt.Errorf("%s: exec: %w", r.name, err)
	}
	return Command{Argv: spec.Cmd, User: spec.User, TTY: spec.TTY, Env: env}, nil
}

// helperTimeout bounds a helper script that moves no content (remove, list, ...) whatever the
// caller's context says, so that no helper runs for long.
const helperTimeout = time.Minute

// scriptResult is how an internal helper script ended.
type scriptResult struct {
	code   int
	stdout []byte
	stderr []byte // the first stderrKeep bytes
}

// runScript runs `/bin/sh -c script sh args...` as a process (killed with its tree on every way
// out), feeding its stdin (when feed is not nil) from feed, and collects up to maxStdout bytes of
// stdout (more is errOutputTooLarge; 0: stdout is discarded). It is for internal commands whose
// output is small; a non-zero exit code is reported in the result, not as an error. Without feed
// it lasts at most helperTimeout.
func (r *Runner) runScript(ctx context.Context, op, id, script string, args []string,
	feed func(w io.Writer) error, maxStdout int64) (scriptResult, error) {
	if feed == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, helperTimeout)
		defer cancel()
	}
	var stdout io.Writer = io.Discard
	var kept *limitedBuffer
	if maxStdout > 0 {
		kept = &limitedBuffer{max: maxStdout}
		stdout = kept
	}
	p, err := r.start(ctx, op, id, Command{
		Stdin: feed != nil,
		Argv:  append([]string{"/bin/sh", "-c", script, "sh"}, args...),
	}, "", stdout, nil)
	if err != nil {
		return scriptResult{code: -1}, err
	}
	defer p.release()
	// The session does not follow ctx once established. Closing it ends the script's input, so a
	// write script sees its content end short and removes its temporary file before release
	// kills whatever is left.
	stopCut := context.AfterFunc(ctx, func() { p.s.Close() })
	defer stopCut()

	// feedErr receives the feeder's error before the stream is cut, so whoever sees the cut also
	// finds its cause.
	feedErr := make(chan error, 1)
	if feed != nil {
		go func() {
			err := feed(p.s)
			if err == nil {
				err = p.s.CloseStdin()
			}
			feedErr <- err
			if err != nil {
				// Cut the stream so the script sees its input end short.
				p.s.Close()
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

	stderr := &limitedBuffer{max: stderrKeep, truncate: true}
	copyErr := p.pump(stderr)
	fail := func(err error) (scriptResult, error) {
		return scriptResult{code: -1}, r.errorf(op, id, "%w", err)
	}
	switch {
	case fed() != nil:
		return fail(fed())
	case ctx.Err() != nil:
		return fail(ctx.Err())
	case copyErr != nil:
		// Too much output (errOutputTooLarge) or a broken stream: release kills the script.
		return fail(fmt.Errorf("reading output: %w", copyErr))
	}
	// The script has closed its output (it has ended, normally). Its input is no longer needed: a
	// feeder still blocked writing fails now instead of waiting for the script's exit to reach it.
	p.s.Close()
	code, err := p.wait(p.ctx, ctx.Done())
	if err != nil {
		return scriptResult{code: -1}, err
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
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
// from a single goroutine (Session.Copy), so it needs no lock.
type outputBudget struct {
	left      int64
	unlimited bool
	truncated bool
	writeErr  error             // the first error of a caller's writer; output is discarded from then on
	failed    func(cause error) // told of that error, once
}

func newOutputBudget(limit int64, failed func(error)) *outputBudget {
	return &outputBudget{left: limit, unlimited: limit <= 0, failed: failed}
}

func (b *outputBudget) writer(w io.Writer) io.Writer {
	if w == nil {
		w = io.Discard
	}
	return &budgetWriter{b: b, w: w}
}

type budgetWriter struct {
	b *outputBudget
	w io.Writer
}

// Write passes on what the budget allows and swallows the rest, never failing, so the stream
// keeps being drained and the command is never blocked on a full pipe. A caller's writer that
// fails (its reader left or stalled past its deadline) is reported once, so the command is killed.
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
			if b.failed != nil {
				b.failed(err)
			}
		}
	}
	return len(p), nil
}

// randSuffix makes temporary names unique.
func randSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
