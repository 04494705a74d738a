package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// How a command runs in a sandbox's container: one pods/exec request through the API server,
// upgraded to a WebSocket (v5.channel.k8s.io, which can close stdin alone) or, when the server
// refuses the upgrade, to SPDY. The request stays open for the command's whole life and is the
// only place its exit status ever appears (on the error channel, after the output has ended):
// Kubernetes has no call to inspect or signal an exec'd process, and cutting the connection
// neither stops the process nor leaves a way to learn how it ended. So a stream is cut only
// once the command has been killed (or is no longer of interest), never to stop it.

// execStream is one command attached through the API server.
type execStream struct {
	stdin *io.PipeWriter // nil without stdin; closing it is the command's end of input
	sizes *sizeQueue     // nil without a TTY
	out   *outputGate
	cut   context.CancelFunc
	done  chan struct{}
	// code and err are set before done is closed: the exit status (-1 when unknown) and, when
	// unknown, why (the request failed, or the stream was cut).
	code int
	err  error
}

// streamSpec is what to run and where its output goes. stdout and stderr (nil: discarded)
// receive writes from one goroutine at a time, and none once the stream is done.
type streamSpec struct {
	cmd            []string
	stdin          bool
	tty            bool
	stdout, stderr io.Writer
	rows, cols     uint // the terminal's first size (tty only); 0: the runtime's default
}

// errCut is a stream's error when it was cut before the command's exit status arrived.
var errCut = errors.New("the connection was closed before the command ended")

// startStream opens an exec of s.cmd in the sandbox container of Pod pod and streams it in the
// background. The request is not bound to ctx once made (the caller decides when to cut it);
// whether the command could start is known from its output (the wrapper's first line) or from
// the stream ending with an error (see streamErr).
func (r *Runtime) startStream(ctx context.Context, pod string, s streamSpec) (*execStream, error) {
	ex, err := r.executor(pod, s)
	if err != nil {
		return nil, err
	}
	sctx, cut := context.WithCancel(context.WithoutCancel(ctx))
	st := &execStream{out: &outputGate{}, cut: cut, done: make(chan struct{}), code: -1}
	opts := remotecommand.StreamOptions{
		Stdout: st.out.writer(s.stdout),
		Tty:    s.tty,
	}
	var stdin *io.PipeReader
	if s.stdin {
		stdin, st.stdin = io.Pipe()
		opts.Stdin = stdin
	}
	if s.tty {
		st.sizes = newSizeQueue(s.rows, s.cols)
		opts.TerminalSizeQueue = st.sizes
	} else {
		opts.Stderr = st.out.writer(s.stderr)
	}
	go func() {
		defer close(st.done)
		err := ex.StreamWithContext(sctx, opts)
		// The executor may return (when cut) while its copies still run: nothing reaches the
		// caller's writers from now on, and nothing waits on stdin or on a resize.
		st.out.shut()
		if stdin != nil {
			stdin.CloseWithError(errCut)
		}
		if st.sizes != nil {
			st.sizes.close()
		}
		st.code, st.err = exitStatus(sctx, err)
	}()
	return st, nil
}

// executor prepares the request: a WebSocket first, SPDY when the server does not upgrade to
// it (an API server older than 1.30, or a proxy in between that cannot). Each stream needs
// executors of its own: they keep per-connection state.
func (r *Runtime) executor(pod string, s streamSpec) (remotecommand.Executor, error) {
	req := r.cs.CoreV1().RESTClient().Post().
		Namespace(r.opts.Namespace).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: sandboxContainer,
			Command:   s.cmd,
			Stdin:     s.stdin,
			Stdout:    true,
			Stderr:    !s.tty,
			TTY:       s.tty,
		}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(r.rest, "GET", req.URL().String())
	if err != nil {
		return nil, fmt.Errorf("kubernetes: exec: websocket: %w", err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(r.rest, "POST", req.URL())
	if err != nil {
		return nil, fmt.Errorf("kubernetes: exec: spdy: %w", err)
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// exitStatus reads the outcome of StreamWithContext: nil is status 0, a non-zero status comes
// as an exec.ExitError, anything else means the status is unknown.
func exitStatus(sctx context.Context, err error) (int, error) {
	var exit utilexec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit):
		return exit.ExitStatus(), nil
	case sctx.Err() != nil:
		return -1, errCut
	}
	return -1, err
}

// wait returns the exit status once the stream has ended, or giveUp's error first.
func (st *execStream) wait(giveUp context.Context) (int, error) {
	select {
	case <-st.done:
		return st.code, st.err
	case <-giveUp.Done():
		return -1, giveUp.Err()
	}
}

// ended reports whether the stream is over (its outcome is in code and err).
func (st *execStream) ended() bool {
	select {
	case <-st.done:
		return true
	default:
		return false
	}
}

// close cuts the connection and returns once the stream is over: nothing is written to the
// output afterwards. The command itself is not stopped by this.
func (st *execStream) close() {
	st.cut()
	<-st.done
}

// outputGate serialises the writes of a stream's stdout and stderr copies (remotecommand runs
// one goroutine per stream) and stops them for good once shut.
type outputGate struct {
	mu     sync.Mutex
	closed bool
}

func (g *outputGate) writer(w io.Writer) io.Writer {
	if w == nil {
		w = io.Discard
	}
	return &gatedWriter{g: g, w: w}
}

// shut waits for a write in progress and drops every later one.
func (g *outputGate) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

type gatedWriter struct {
	g *outputGate
	w io.Writer
}

func (gw *gatedWriter) Write(p []byte) (int, error) {
	gw.g.mu.Lock()
	defer gw.g.mu.Unlock()
	if gw.g.closed {
		return len(p), nil
	}
	return gw.w.Write(p)
}

// sizeQueue hands terminal sizes to the stream (remotecommand.TerminalSizeQueue): only the latest
// size not yet sent is kept, and Next returns nil once the stream is over.
type sizeQueue struct {
	mu        sync.Mutex
	next      chan remotecommand.TerminalSize
	done      chan struct{}
	closeOnce sync.Once
}

// newSizeQueue starts with rows×cols queued (nothing when either is 0).
func newSizeQueue(rows, cols uint) *sizeQueue {
	q := &sizeQueue{next: make(chan remotecommand.TerminalSize, 1), done: make(chan struct{})}
	if rows > 0 && cols > 0 {
		q.next <- remotecommand.TerminalSize{Height: uint16(min(rows, 0xffff)), Width: uint16(min(cols, 0xffff))}
	}
	return q
}

// Next blocks until a size is set or the stream is over (nil).
func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case s := <-q.next:
		return &s
	case <-q.done:
		return nil
	}
}

// errSessionOver is Resize's error once the terminal's stream has ended.
var errSessionOver = errors.New("the terminal session is over")

// set queues rows×cols, replacing a size not sent yet.
func (q *sizeQueue) set(rows, cols uint) error {
	size := remotecommand.TerminalSize{Height: uint16(min(rows, 0xffff)), Width: uint16(min(cols, 0xffff))}
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-q.done:
		return errSessionOver
	default:
	}
	select {
	case <-q.next:
	default:
	}
	q.next <- size
	return nil
}

func (q *sizeQueue) close() { q.closeOnce.Do(func() { close(q.done) }) }
