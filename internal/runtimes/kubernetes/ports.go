package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	pfconst "k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/transport/websocket"
	"k8s.io/streaming/pkg/httpstream"
	streamspdy "k8s.io/streaming/pkg/httpstream/spdy"

	"github.com/insien/orchestrator/internal/runtimes"
)

// How a port in a sandbox is reached: through the API server's pods/portforward subresource, the
// protocol of `kubectl port-forward`, so that it works whatever the Pod network and its
// NetworkPolicy (the kubelet's container runtime dials the port from inside the Pod's network
// namespace, on its loopback). Each DialPort makes a connection of its own (a WebSocket carrying
// SPDY, or plain SPDY when the server refuses the WebSocket), and on it one pair of streams, as
// client-go's PortForwarder does for each local connection: an error stream, on which the kubelet
// writes why it could not forward (then ends it), and a data stream carrying the bytes.
//
// The protocol has no word for success: a dial that worked is silence on the error stream, a
// refused one a message on it a moment after the streams were made. So DialPort waits for that
// message a short while (see refusalWait) before it hands the connection over; a refusal reported
// later (a node slower than that) is the error of the connection's first Read, still
// ErrPortNotListening.
//
// There is no CloseWrite: the container runtime (containerd) ends the whole forwarding a second
// after either direction has ended, so half-closing would cut the app's answer short.

const (
	// refusalBase and refusalMax bound how long DialPort waits for the kubelet to report that
	// nothing listens: see refusalWait.
	refusalBase = 50 * time.Millisecond
	refusalMax  = time.Second
	// endWait bounds how long a Read that met the end of the data stream waits for the error
	// stream to say whether forwarding failed (the kubelet ends it just before the data stream).
	endWait = time.Second
	// maxErrorMessage bounds what is read of the error stream.
	maxErrorMessage = 4 << 10
	// frameSize bounds the data one frame carries (SPDY allows 16 MiB; smaller frames interleave
	// with the connection's pings and the error stream).
	frameSize = 32 << 10
)

var _ runtimes.Ports = (*Runtime)(nil)

// DialPort opens a TCP connection to port on the loopback of Pod id, through the API server: see
// runtimes.Ports. A Pod that is missing is ErrNotFound, one that does not run a
// *runtimes.NotRunningError (read from the Pod first), and a port nothing listens on
// ErrPortNotListening: from DialPort itself when the kubelet says so within refusalWait (the
// usual case: it answers within milliseconds), otherwise from the connection's first Read (or
// Write). The connection's deadlines are its own (see portConn): the streams have none.
func (r *Runtime) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	return r.dialPort(ctx, id, port, true)
}

// dialPort is DialPort, over plain SPDY only when webSocket is false.
func (r *Runtime) dialPort(ctx context.Context, id string, port int, webSocket bool) (net.Conn, error) {
	op := fmt.Sprintf("dial port %d", port)
	if id == "" {
		return nil, emptyID(op)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("kubernetes: %s in %s: not a TCP port", op, id)
	}
	if err := r.mustRun(ctx, op, id); err != nil {
		return nil, err
	}
	conn, err := r.portForward(ctx, id, webSocket)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("kubernetes: %s in %s: %w", op, id, ctx.Err())
		}
		return nil, r.streamErr(ctx, op, id, err)
	}
	// Making a stream waits for the far end's reply without a context: closing the connection
	// ends that wait.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, err := newPortConn(conn, r.opts.Namespace, id, port)
	if !stop() || ctx.Err() != nil || err != nil {
		if c != nil {
			c.Close()
		} else {
			conn.Close()
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("kubernetes: %s in %s: %w", op, id, ctx.Err())
		}
		return nil, r.streamErr(ctx, op, id, err)
	}
	if err := c.awaitRefusal(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("kubernetes: %s in %s: %w", op, id, err)
	}
	return c, nil
}

// mustRun reads Pod id: ErrNotFound when it is missing, a *runtimes.NotRunningError when it does
// not run (or is being deleted).
func (r *Runtime) mustRun(ctx context.Context, op, id string) error {
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	p, err := r.pods().Get(rctx, id, metav1.GetOptions{})
	if err != nil {
		return r.apiErr(ctx, op, id, err)
	}
	if info := podInfo(p); info.State != runtimes.StateRunning || p.DeletionTimestamp != nil {
		return fmt.Errorf("kubernetes: %s in %s: %w",
			op, id, &runtimes.NotRunningError{State: info.State, ExitCode: info.ExitCode, OOMKilled: info.OOMKilled})
	}
	return nil
}

// portForward upgrades a pods/portforward request for Pod pod: SPDY tunnelled in a WebSocket
// first (what kubectl does since Kubernetes 1.31; skipped when webSocket is false), plain SPDY when
// the server does not upgrade to the WebSocket. The upgrade is bounded by ctx and
// Options.RequestTimeout; the connection, once made, is not bound to ctx.
func (r *Runtime) portForward(ctx context.Context, pod string, webSocket bool) (httpstream.Connection, error) {
	u := r.cs.CoreV1().RESTClient().Post().
		Namespace(r.opts.Namespace).Resource("pods").Name(pod).SubResource("portforward").URL()
	uctx, cancel := r.requestContext(ctx)
	defer cancel()
	if webSocket {
		conn, err := r.portForwardWebSocket(uctx, u)
		if err == nil || !httpstream.IsUpgradeFailure(err) && !httpstream.IsHTTPSProxyError(err) {
			return conn, err
		}
		r.log.Debug("port forward: no WebSocket, falling back to SPDY", zap.String("pod", pod), zap.Error(err))
	}
	return r.portForwardSPDY(uctx, u)
}

// portForwardWebSocket is client-go's SPDY-over-WebSocket dialer (portforward.
// NewSPDYOverWebsocketDialer) with a context: the WebSocket's handshake is bounded by ctx.
func (r *Runtime) portForwardWebSocket(ctx context.Context, u *url.URL) (httpstream.Connection, error) {
	rt, holder, err := websocket.RoundTripperFor(r.rest)
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	ws, err := websocket.Negotiate(rt, holder, req, pfconst.WebsocketsSPDYTunnelingPortForwardV1)
	if err != nil {
		return nil, err
	}
	tunnel := portforward.NewTunnelingConnectionWithLogger(r.in.streamLog, ws)
	conn, err := streamspdy.NewClientConnectionWithPings(tunnel, portforward.PingPeriod)
	if err != nil {
		tunnel.Close()
		return nil, fmt.Errorf("spdy over websocket: %w", err)
	}
	return conn, nil
}

// portForwardSPDY upgrades to SPDY (client-go's spdy dialer, with a context). The context bounds
// the dial and the TLS handshake; the SPDY round tripper then reads the server's answer without
// one (a server that accepted the request and never answers holds it).
func (r *Runtime) portForwardSPDY(ctx context.Context, u *url.URL) (httpstream.Connection, error) {
	rt, upgrader, err := spdy.RoundTripperFor(r.rest)
	if err != nil {
		return nil, fmt.Errorf("spdy: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, err
	}
	conn, protocol, err := spdy.NegotiateStreaming(upgrader, &http.Client{Transport: rt}, req, portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, err
	}
	if protocol != portforward.PortForwardProtocolV1Name {
		conn.Close()
		return nil, fmt.Errorf("spdy: the server speaks %q, not %q", protocol, portforward.PortForwardProtocolV1Name)
	}
	return conn, nil
}

// portConn is one forwarded TCP connection: the data stream of a port-forward connection of its
// own, as a net.Conn.
//
// Deadlines: the streams have none (a SPDY stream's SetDeadline sets the whole connection's,
// which ends it), so the read deadline is portConn's own, with net.Conn's meaning: a Read blocked
// when it passes returns a timeout (os.ErrDeadlineExceeded, a net.Error) and the connection stays
// usable once the deadline is moved. A goroutine reads the data stream ahead, one chunk at a time,
// for Read to wait on with the deadline. The write deadline is only checked when a Write starts:
// a Write called after it has passed fails with a timeout, but one already blocked (on a slow
// connection to the API server) is not interrupted, as a frame cannot be abandoned half-written.
type portConn struct {
	conn          httpstream.Connection
	data          httpstream.Stream
	local, remote net.Addr

	chunks    chan []byte   // the data stream's chunks, read ahead; closed at its end
	firstData chan struct{} // closed when the first chunk was read
	refused   chan struct{} // closed once the error stream has ended; remoteErr says how
	rtt       time.Duration // how long the far end took to accept the data stream
	remoteErr error         // why the kubelet could not forward (nil: it did not say)

	readMu   sync.Mutex // one Read at a time
	unread   []byte     // what is left of the chunk Read took last
	readTime deadline

	writeMu   sync.Mutex // one Write at a time: a Write's frames are not interleaved
	deadMu    sync.Mutex // writeTime's (SetWriteDeadline may run during a Write)
	writeTime time.Time

	closed    chan struct{}
	closeOnce sync.Once
}

// newPortConn makes the error and data streams for port, with the headers client-go's
// PortForwarder.handleConnection sends (a connection carries one request: its id is 0), and
// starts reading both.
func newPortConn(conn httpstream.Connection, ns, pod string, port int) (*portConn, error) {
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(port))
	headers.Set(corev1.PortForwardRequestIDHeader, "0")
	errs, err := conn.CreateStream(headers)
	if err != nil {
		return nil, fmt.Errorf("creating the error stream: %w", err)
	}
	// Nothing is written on the error stream.
	errs.Close()
	c := &portConn{
		conn:      conn,
		local:     portAddr("orchestrator"),
		remote:    portAddr(fmt.Sprintf("%s/%s:%d", ns, pod, port)),
		chunks:    make(chan []byte),
		firstData: make(chan struct{}),
		refused:   make(chan struct{}),
		readTime:  makeDeadline(),
		closed:    make(chan struct{}),
	}
	go c.readErrors(errs)
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	began := time.Now()
	c.data, err = conn.CreateStream(headers)
	c.rtt = time.Since(began)
	if err != nil {
		return c, fmt.Errorf("creating the data stream: %w", err)
	}
	go c.readAhead()
	return c, nil
}

// readErrors reads the error stream to its end: the kubelet writes on it why forwarding failed
// (the container runtime could not connect, or the copy broke) and then ends it, as it also does,
// silently, when the forwarded connection ends.
func (c *portConn) readErrors(errs httpstream.Stream) {
	defer close(c.refused)
	msg, err := io.ReadAll(io.LimitReader(errs, maxErrorMessage))
	switch {
	case len(msg) > 0:
		c.remoteErr = forwardErr(string(msg))
	case err != nil && !c.isClosed():
		c.remoteErr = fmt.Errorf("reading the port forward's error stream: %w", err)
	}
}

// forwardErr is the error of the kubelet's message: ErrPortNotListening when the dial inside the
// Pod was refused (containerd: "failed to connect to localhost:PORT inside namespace ...: ...
// connection refused"; CRI-O and others say "connection refused").
func forwardErr(msg string) error {
	msg = strings.TrimSpace(msg)
	low := strings.ToLower(msg)
	if strings.Contains(low, "connection refused") || strings.Contains(low, "failed to connect to localhost") {
		return fmt.Errorf("%w: %s", runtimes.ErrPortNotListening, msg)
	}
	return fmt.Errorf("port forward: %s", msg)
}

// readAhead reads the data stream for Read, one chunk ahead, until its end or Close.
func (c *portConn) readAhead() {
	defer close(c.chunks)
	buf := make([]byte, frameSize)
	first := true
	for {
		n, err := c.data.Read(buf)
		if n > 0 {
			if first {
				close(c.firstData)
				first = false
			}
			select {
			case c.chunks <- append([]byte(nil), buf[:n]...):
			case <-c.closed:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// refusalWait is how long to wait for a refusal after the data stream was accepted in rtt. The
// container runtime dials the app as soon as it has both streams, when the data stream's
// acceptance is already on its way back, and reports a refusal the same way: within a few
// milliseconds of the acceptance (locally ~2 ms, for an acceptance that took 1-10 ms). A margin of
// refusalBase and four such trips covers a busy node without making every connection wait long.
func refusalWait(rtt time.Duration) time.Duration {
	return min(refusalBase+4*rtt, refusalMax)
}

// awaitRefusal waits up to refusalWait for the kubelet to report that the port could not be
// reached, and returns that report. Data from the app (a server that speaks first), or a silent end
// of the error stream (the app accepted and closed at once), ends the wait with no error.
func (c *portConn) awaitRefusal(ctx context.Context) error {
	t := time.NewTimer(refusalWait(c.rtt))
	defer t.Stop()
	select {
	case <-c.refused:
		return c.remoteErr
	case <-c.firstData:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// Read reads what the app sent. At the data stream's end it returns the kubelet's error, if it
// reported one (ErrPortNotListening for a refusal it reported late), else io.EOF.
func (c *portConn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.isClosed() {
		return 0, c.opErr("read", net.ErrClosed)
	}
	if len(c.unread) == 0 {
		if len(p) == 0 {
			return 0, nil
		}
		expired := c.readTime.wait()
		select {
		case <-expired:
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		default:
		}
		select {
		case chunk, ok := <-c.chunks:
			if !ok {
				return 0, c.endErr()
			}
			c.unread = chunk
		case <-expired:
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		case <-c.closed:
			return 0, c.opErr("read", net.ErrClosed)
		}
	}
	n := copy(p, c.unread)
	c.unread = c.unread[n:]
	return n, nil
}

// endErr is Read's error at the data stream's end.
func (c *portConn) endErr() error {
	t := time.NewTimer(endWait)
	defer t.Stop()
	select {
	case <-c.refused:
		if c.remoteErr != nil {
			return c.opErr("read", c.remoteErr)
		}
	case <-t.C:
	case <-c.closed:
		return c.opErr("read", net.ErrClosed)
	}
	return io.EOF
}

// Write sends p to the app, in frames of at most frameSize.
func (c *portConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.isClosed() {
		return 0, c.opErr("write", net.ErrClosed)
	}
	select {
	case <-c.refused:
		if c.remoteErr != nil {
			return 0, c.opErr("write", c.remoteErr)
		}
	default:
	}
	c.deadMu.Lock()
	wt := c.writeTime
	c.deadMu.Unlock()
	if !wt.IsZero() && !time.Now().Before(wt) {
		return 0, c.opErr("write", os.ErrDeadlineExceeded)
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), frameSize)
		if _, err := c.data.Write(p[:k]); err != nil {
			if c.isClosed() {
				err = net.ErrClosed
			}
			return n, c.opErr("write", err)
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// Close ends the forwarded connection: both streams are reset and the port-forward connection is
// closed (the kubelet then closes its connection to the app).
func (c *portConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		close(c.closed)
		// The connection resets every stream it made (the data stream discards what was not
		// sent yet) before it closes.
		err = c.conn.Close()
	})
	return err
}

func (c *portConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *portConn) LocalAddr() net.Addr  { return c.local }
func (c *portConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines; see portConn.
func (c *portConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline bounds Read, in progress and future; see portConn.
func (c *portConn) SetReadDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opErr("set deadline", net.ErrClosed)
	}
	c.readTime.set(t)
	return nil
}

// SetWriteDeadline bounds the Writes that start after it; see portConn.
func (c *portConn) SetWriteDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opErr("set deadline", net.ErrClosed)
	}
	c.deadMu.Lock()
	c.writeTime = t
	c.deadMu.Unlock()
	return nil
}

func (c *portConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: portNetwork, Source: c.local, Addr: c.remote, Err: err}
}

// portNetwork names the network of a forwarded connection's addresses.
const portNetwork = "kubernetes-portforward"

// portAddr is a forwarded connection's address: the Pod and port it reaches (namespace/pod:port),
// or, for its local end, a placeholder.
type portAddr string

func (a portAddr) Network() string { return portNetwork }
func (a portAddr) String() string  { return string(a) }

// deadline is a deadline that can be waited on and moved, like net.Pipe's (net/pipe.go): wait's
// channel is closed when it passes, and a new one is made when it is moved into the future.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
}

func makeDeadline() deadline { return deadline{cancel: make(chan struct{})} }

// set moves the deadline to t; the zero time removes it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait until it has closed cancel
	}
	d.timer = nil
	closed := isClosedChan(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// wait returns a channel that is closed when the deadline passes.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosedChan(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
