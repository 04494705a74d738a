package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/coder/websocket"

	"github.com/insien/orchestrator/sdk/go/api"
)

// TerminalOptions says what runs in a terminal and how big it starts.
type TerminalOptions struct {
	// Cmd is the argv to run on the pseudo-terminal; nil runs sh.
	Cmd []string
	// Rows and Cols are the terminal's size (1 to 1000; 0: 24 rows, 80 columns).
	Rows, Cols int
}

// Terminal is a command attached to a pseudo-terminal in a sandbox, over a WebSocket: what is
// written is typed, what is read is the terminal's output (echo included). Read returns io.EOF once
// the command has exited and its output is read; ExitCode then says how it ended. Close ends the
// command. Read, Write and Resize may be called from different goroutines.
type Terminal struct {
	conn   *websocket.Conn
	ctx    context.Context // ends at Close: bounds Write
	cancel context.CancelFunc

	mu       sync.Mutex
	more     *sync.Cond   // signalled when out grows, reads drain it or the terminal ends
	out      bytes.Buffer // received, not yet read
	end      error        // why no more output comes: io.EOF after the command exited
	exitCode int
	exited   bool
	done     chan struct{} // closed when the receiving goroutine returns
}

// maxTerminalBuffer is how much unread output the terminal holds before it stops receiving (and
// so stops answering the server's pings) until Read catches up.
const maxTerminalBuffer = 4 << 20

// Terminal opens a terminal running opts.Cmd. ctx bounds the opening only; Close ends the
// terminal. What keeps it from opening (a paused sandbox, too many connections) is *Error.
func (sb *Sandbox) Terminal(ctx context.Context, opts TerminalOptions) (*Terminal, error) {
	id, err := sb.uuid()
	if err != nil {
		return nil, err
	}
	params := &api.OpenTerminalParams{}
	if len(opts.Cmd) > 0 {
		params.Cmd = &opts.Cmd
	}
	if opts.Rows > 0 {
		params.Rows = &opts.Rows
	}
	if opts.Cols > 0 {
		params.Cols = &opts.Cols
	}
	req, err := api.NewOpenTerminalRequest(sb.c.server(), id, params)
	if err != nil {
		return nil, fmt.Errorf("insien: building the terminal request: %w", err)
	}
	u := *req.URL
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1) // http→ws, https→wss
	hdr := http.Header{}
	sb.c.authorize(hdr)
	conn, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: sb.c.http, HTTPHeader: hdr})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, readError(resp) // the library kept up to 1 KiB of the body: enough for the error shape
		}
		return nil, requestFailed("opening a terminal in sandbox "+sb.ID, err)
	}
	conn.SetReadLimit(1 << 20)
	t := &Terminal{conn: conn, done: make(chan struct{})}
	t.more = sync.NewCond(&t.mu)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	go t.receive()
	return t, nil
}

// receive moves the server's binary frames into out until the socket ends, and records how.
func (t *Terminal) receive() {
	defer close(t.done)
	for {
		typ, data, err := t.conn.Read(t.ctx)
		if err != nil {
			t.finish(err)
			return
		}
		if typ != websocket.MessageBinary {
			continue // the server sends no text frames today
		}
		t.mu.Lock()
		for t.out.Len() > maxTerminalBuffer && t.end == nil {
			t.more.Wait()
		}
		t.out.Write(data)
		t.more.Broadcast()
		t.mu.Unlock()
	}
}

// finish records why the socket ended: a normal close carries the exit code as its reason.
func (t *Terminal) finish(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.more.Broadcast()
	if t.end != nil {
		return // Close came first
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) && ce.Code == websocket.StatusNormalClosure {
		var reason struct {
			ExitCode *int `json:"exit_code"`
		}
		if json.Unmarshal([]byte(ce.Reason), &reason) == nil && reason.ExitCode != nil {
			t.exitCode, t.exited = *reason.ExitCode, true
		}
		t.end = io.EOF
		return
	}
	if errors.As(err, &ce) {
		t.end = fmt.Errorf("insien: the terminal closed: %d %s", ce.Code, ce.Reason)
		return
	}
	t.end = fmt.Errorf("insien: the terminal connection broke: %w", err)
}

// Read reads the terminal's output; io.EOF once the command exited and everything was read.
func (t *Terminal) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.out.Len() == 0 && t.end == nil {
		t.more.Wait()
	}
	if t.out.Len() > 0 {
		n, _ := t.out.Read(p)
		t.more.Broadcast()
		return n, nil
	}
	return 0, t.end
}

// Write types p into the terminal.
func (t *Terminal) Write(p []byte) (int, error) {
	if err := t.conn.Write(t.ctx, websocket.MessageBinary, p); err != nil {
		return 0, fmt.Errorf("insien: writing to the terminal: %w", err)
	}
	return len(p), nil
}

// Resize tells the terminal its new size (programs in it get SIGWINCH).
func (t *Terminal) Resize(ctx context.Context, rows, cols int) error {
	msg, err := json.Marshal(struct {
		Type string `json:"type"`
		Rows int    `json:"rows"`
		Cols int    `json:"cols"`
	}{"resize", rows, cols})
	if err != nil {
		return err
	}
	if err := t.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("insien: resizing the terminal: %w", err)
	}
	return nil
}

// ExitCode is the command's exit status, once Read has returned io.EOF; ok is false before, and
// when the terminal ended any other way (Close, a broken connection).
func (t *Terminal) ExitCode() (code int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.exitCode, t.exited
}

// Close ends the terminal, killing the command if it still runs. Reads then return net.ErrClosed
// (or io.EOF if the command had exited).
func (t *Terminal) Close() error {
	t.mu.Lock()
	if t.end == nil {
		t.end = net.ErrClosed
	}
	t.more.Broadcast()
	t.mu.Unlock()
	err := t.conn.Close(websocket.StatusNormalClosure, "")
	t.cancel()
	<-t.done
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return nil // the server had closed already
	}
	return err
}
