package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream"
)

// How a command runs in a sandbox's container: one pods/exec request through the API server,
// upgraded to a WebSocket (v5.channel.k8s.io, which can close stdin alone) or, when the server
// refuses the upgrade, to SPDY. The request stays open for the command's whole life and is the
// only place its exit status ever appears (on the error channel, after the output has ended):
// Kubernetes has no call to inspect or signal an exec'd process, and cutting the connection
// neither stops the process nor leaves a way to learn how it ended. So a stream is never cut to
// stop a command: Close detaches (output and input stop) and the request stays open until the
// exit status arrives, at most detachLimit.

// detachLimit bounds how long a detached stream waits for its command's exit status before the
// connection is cut: longer than a kill takes (the pid wait, then the cleanup timeout).
const detachLimit = 30 * time.Second

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

	detached   chan struct{}
	detachOnce sync.Once
}

// streamSpec is what to run.
type streamSpec struct {
	cmd        []string
	stdin      bool
	tty        bool
	rows, cols uint // the terminal's first size (tty only); 0: the runtime's default
}

var (
	// errCut is a stream's error when it was cut before the command's exit status arrived.
	errCut = errors.New("the connection was closed before the command ended")
	// errDetached is what Copy and Write return once the stream was closed on our side.
	errDetached = errors.New("the stream was closed")
)

// startStream opens an exec of s.cmd in the sandbox container of Pod pod and returns once the
// API server and the kubelet have accepted it (the connection is upgraded): a Pod that is missing
// or not running is refused before that, and reported as ErrNotFound or a NotRunningError. The
// request is not bound to ctx once accepted: Close ends it.
func (r *Runtime) startStream(ctx context.Context, op, pod string, s streamSpec) (*execStream, error) {
	accepted := make(chan struct{})
	ex, err := r.executor(pod, s, accepted)
	if err != nil {
		return nil, err
	}
	sctx, cut := context.WithCancel(context.WithoutCancel(ctx))
	sctx = klog.NewContext(sctx, r.in.streamLog)
	st := &execStream{out: newOutputGate(), cut: cut, done: make(chan struct{}), code: -1, detached: make(chan struct{})}
	opts := remotecommand.StreamOptions{Stdout: st.out.writer(0), Tty: s.tty}
	if s.stdin {
		var stdinR *io.PipeReader
		stdinR, st.stdin = io.Pipe()
		opts.Stdin = stdinR
	}
	if s.tty {
		st.sizes = newSizeQueue(s.rows, s.cols)
		opts.TerminalSizeQueue = st.sizes
	} else {
		opts.Stderr = st.out.writer(1)
	}
	go st.run(sctx, ex, opts)
	select {
	case <-accepted:
		if st.sizes != nil {
			// A terminal's first size goes out before anything is typed into it.
			st.sizes.waitInitial(ctx)
		}
		return st, nil
	case <-st.done:
		return nil, r.streamErr(ctx, op, pod, st.err)
	case <-ctx.Done():
		st.detach()
		st.cut()
		return nil, fmt.Errorf("kubernetes: %s in %s: %w", op, pod, ctx.Err())
	}
}

// run streams until the command's exit status arrives or the connection is cut.
func (st *execStream) run(sctx context.Context, ex remotecommand.Executor, opts remotecommand.StreamOptions) {
	defer close(st.done)
	err := ex.StreamWithContext(sctx, opts)
	// The executor may return (when cut) while its copies still run: nothing reaches the caller's
	// writers from now on, and nothing waits on stdin or on a resize. (The stdin copy sees end of
	// input, not an error, which remotecommand would log.)
	st.out.shut()
	if st.stdin != nil {
		st.stdin.Close()
	}
	if st.sizes != nil {
		st.sizes.close()
	}
	st.code, st.err = exitStatus(sctx, err)
	st.cut()
}

// executor prepares the request: a WebSocket first, SPDY when the server does not upgrade to it
// (an API server older than 1.30, or a proxy in between that cannot). accepted is closed when the
// server answers 101 Switching Protocols. Executors keep per-connection state: one per stream.
func (r *Runtime) executor(pod string, s streamSpec, accepted chan struct{}) (remotecommand.Executor, error) {
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
	cfg := *r.rest
	cfg.WrapTransport = watchUpgrade(r.rest.WrapTransport, accepted)
	ws, err := remotecommand.NewWebSocketExecutor(&cfg, "GET", req.URL().String())
	if err != nil {
		return nil, fmt.Errorf("kubernetes: exec: websocket: %w", err)
	}
	return remotecommand.NewFallbackExecutor(ws, &lazySPDY{cfg: &cfg, url: req.URL()}, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// watchUpgrade wraps the streaming transport (after next, the config's own wrapper) so that
// accepted is closed when a response switches protocols.
func watchUpgrade(next func(http.RoundTripper) http.RoundTripper, accepted chan struct{}) func(http.RoundTripper) http.RoundTripper {
	var once sync.Once
	return func(rt http.RoundTripper) http.RoundTripper {
		if next != nil {
			rt = next(rt)
		}
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
				once.Do(func() { close(accepted) })
			}
			return resp, err
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// lazySPDY builds the SPDY executor only when the WebSocket was refused: building one parses the
// client's TLS material, which every stream would pay for nothing.
type lazySPDY struct {
	cfg *rest.Config
	url *url.URL
}

func (l *lazySPDY) Stream(opts remotecommand.StreamOptions) error {
	return l.StreamWithContext(context.Background(), opts)
}

func (l *lazySPDY) StreamWithContext(ctx context.Context, opts remotecommand.StreamOptions) error {
	ex, err := remotecommand.NewSPDYExecutor(l.cfg, "POST", l.url)
	if err != nil {
		return fmt.Errorf("spdy: %w", err)
	}
	return ex.StreamWithContext(ctx, opts)
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

// Copy writes the output to stdout and stderr (a TTY's all to stdout) until the stream is over
// (the output has ended and the exit status arrived: remotecommand does not tell the output's
// end apart), one of them fails (its error) or Close is called. Called once.
func (st *execStream) Copy(stdout, stderr io.Writer) error {
	st.out.install(stdout, stderr)
	select {
	case <-st.done:
	case <-st.out.failed:
	case <-st.detached:
	}
	if err := st.out.settle(); err != nil {
		return err
	}
	select {
	case <-st.detached:
		return errDetached
	default:
	}
	if errors.Is(st.err, errCut) {
		return errDetached
	}
	return st.err
}

// Write sends input to the command.
func (st *execStream) Write(p []byte) (int, error) {
	if st.stdin == nil {
		return 0, errors.New("the command has no input")
	}
	return st.stdin.Write(p)
}

// CloseStdin ends the command's input: it reads end of file.
func (st *execStream) CloseStdin() error {
	if st.stdin == nil {
		return nil
	}
	return st.stdin.Close()
}

// Close detaches: output and input stop at once, and the connection stays open until the exit
// status arrives (so Wait still learns it), at most detachLimit. It does not stop the command.
func (st *execStream) Close() error {
	st.detach()
	return nil
}

func (st *execStream) detach() {
	st.detachOnce.Do(func() {
		close(st.detached)
		st.out.shut()
		if st.stdin != nil {
			st.stdin.Close() // Write fails from now on; the command reads end of input
		}
		if st.sizes != nil {
			st.sizes.close()
		}
		go func() {
			select {
			case <-st.done:
			case <-time.After(detachLimit):
				st.cut()
			}
		}()
	})
}

// Wait returns the exit status once the stream is over, or ctx's error first.
func (st *execStream) Wait(ctx context.Context) (int, error) {
	select {
	case <-st.done:
		return st.code, st.err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// Resize sets the terminal's size in character cells; input sent after it returns finds the
// terminal at its new size.
func (st *execStream) Resize(ctx context.Context, rows, cols uint) error {
	if st.sizes == nil {
		return errors.New("not a terminal")
	}
	return st.sizes.set(ctx, rows, cols)
}

// outputGate hands the output of a stream's stdout and stderr copies (remotecommand runs one
// goroutine each) to the writers Copy installs, one write at a time; copies wait for Copy. Once
// the gate is shut, or one of those writers failed, every later write is dropped (the copies go
// on draining the stream, so the command is never blocked on a full pipe). Shutting never waits
// for a write in progress, which may be stuck on a reader that is gone: Copy does, before it
// returns, so that nothing is written once it has returned.
type outputGate struct {
	ready     chan struct{} // closed by install or shut
	readyOnce sync.Once
	failed    chan struct{} // closed when a writer failed; err says how
	closed    atomic.Bool
	mu        sync.Mutex   // held by the write in progress
	to        [2]io.Writer // stdout, stderr
	err       error
}

func newOutputGate() *outputGate {
	return &outputGate{ready: make(chan struct{}), failed: make(chan struct{})}
}

func (g *outputGate) writer(which int) io.Writer { return &gatedWriter{g: g, which: which} }

func (g *outputGate) install(stdout, stderr io.Writer) {
	g.mu.Lock()
	g.to = [2]io.Writer{stdout, stderr}
	for i, w := range g.to {
		if w == nil {
			g.to[i] = io.Discard
		}
	}
	g.mu.Unlock()
	g.readyOnce.Do(func() { close(g.ready) })
}

// shut drops every write that has not started yet.
func (g *outputGate) shut() {
	g.closed.Store(true)
	g.readyOnce.Do(func() { close(g.ready) })
}

// settle waits for the write in progress, if any, and returns the error of the writer that
// failed, if one did.
func (g *outputGate) settle() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

type gatedWriter struct {
	g     *outputGate
	which int
}

func (gw *gatedWriter) Write(p []byte) (int, error) {
	g := gw.g
	<-g.ready
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed.Load() || g.err != nil {
		return len(p), nil
	}
	if _, err := g.to[gw.which].Write(p); err != nil {
		g.err = err
		close(g.failed)
	}
	return len(p), nil
}

// sizeQueue hands terminal sizes to the stream (remotecommand.TerminalSizeQueue, whose reader
// loops on Next and writes each size on the stream's resize channel). Next returns nil once the
// stream is over.
type sizeQueue struct {
	next      chan sizeRequest
	initial   chan struct{} // closed once the first size is on the wire (nil: none was given)
	last      *sizeRequest  // the size Next returned last: sent once Next is called again
	done      chan struct{}
	closeOnce sync.Once
}

// sizeRequest is one size to send; sent is closed once it is on the wire.
type sizeRequest struct {
	size remotecommand.TerminalSize
	sent chan struct{}
}

// resizeSettle is how long Resize waits after the new size is on the wire: the server applies a
// size on a goroutine of its own, apart from the input, so input typed at once could otherwise be
// read by the program (`stty size`) before the terminal has its new size.
const resizeSettle = 50 * time.Millisecond

// newSizeQueue starts with rows×cols queued (nothing when either is 0).
func newSizeQueue(rows, cols uint) *sizeQueue {
	q := &sizeQueue{next: make(chan sizeRequest, 1), done: make(chan struct{})}
	if rows > 0 && cols > 0 {
		q.initial = make(chan struct{})
		q.next <- sizeRequest{size: termSize(rows, cols), sent: q.initial}
	}
	return q
}

// initialWait bounds the wait for the first size: a server speaking a protocol older than v3
// (no resize channel) never takes it.
const initialWait = time.Second

// waitInitial returns once the first size is on the wire, the stream is over, ctx ends or
// initialWait has passed.
func (q *sizeQueue) waitInitial(ctx context.Context) {
	if q.initial == nil {
		return
	}
	t := time.NewTimer(initialWait)
	defer t.Stop()
	select {
	case <-q.initial:
	case <-q.done:
	case <-ctx.Done():
	case <-t.C:
	}
}

func termSize(rows, cols uint) remotecommand.TerminalSize {
	return remotecommand.TerminalSize{Height: uint16(min(rows, 0xffff)), Width: uint16(min(cols, 0xffff))}
}

// Next blocks until a size is set or the stream is over (nil). Being called again means the size
// it returned before has been written.
func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	if q.last != nil {
		close(q.last.sent)
		q.last = nil
	}
	select {
	case r := <-q.next:
		q.last = &r
		return &r.size
	case <-q.done:
		return nil
	}
}

// errSessionOver is Resize's error once the terminal's stream has ended.
var errSessionOver = errors.New("the terminal session is over")

// set sends rows×cols and returns once it is on the wire and has had resizeSettle to apply.
func (q *sizeQueue) set(ctx context.Context, rows, cols uint) error {
	r := sizeRequest{size: termSize(rows, cols), sent: make(chan struct{})}
	select {
	case q.next <- r:
	case <-q.done:
		return errSessionOver
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.sent:
	case <-q.done: // the stream ended with it taken: sent, or of no use any more
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-time.After(resizeSettle):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *sizeQueue) close() { q.closeOnce.Do(func() { close(q.done) }) }
