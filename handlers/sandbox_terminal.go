package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"

	"github.com/insien/orchestrator/internal/identity/auth"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/loop"
	"github.com/insien/orchestrator/internal/platform/middleware"
	"github.com/insien/orchestrator/internal/sandbox/interact"
)

// Terminal WebSocket tuning.
const (
	terminalReadLimit = 1 << 20          // largest client message (a paste)
	terminalPing      = 30 * time.Second // a client that stops answering pings is dropped
)

// websocketOptions accepts the browser origins that CORS allows (all of them for "*"); requests
// without an Origin header (programs, not browsers) are always accepted.
func websocketOptions(cors config.CORS) *websocket.AcceptOptions {
	opts := &websocket.AcceptOptions{}
	for _, o := range cors.AllowedOrigins {
		o = strings.TrimRight(o, "/")
		if o == "*" {
			opts.InsecureSkipVerify = true
		}
		opts.OriginPatterns = append(opts.OriginPatterns, o)
	}
	return opts
}

// controlMessage is a text frame from the client.
type controlMessage struct {
	Type string `json:"type"`
	Rows uint   `json:"rows"`
	Cols uint   `json:"cols"`
}

// terminal upgrades to a WebSocket attached to a pseudo-terminal in the sandbox: binary frames
// carry keystrokes in and output out, text frames carry JSON control messages (resize). The
// socket closes normally with {"exit_code":N} as reason when the command exits; closing it kills
// the command.
func (h *SandboxOps) terminal(c *gin.Context) {
	id, ok := sandboxID(c)
	if !ok {
		return
	}
	in := interact.TerminalInput{Cmd: c.QueryArray("cmd")}
	for _, q := range []struct {
		name string
		dst  *uint
	}{{"rows", &in.Rows}, {"cols", &in.Cols}} {
		if raw := c.Query(q.name); raw != "" {
			n, err := strconv.ParseUint(raw, 10, 32)
			if err != nil || n < 1 || n > interact.MaxTerminalSize {
				_ = c.Error(apierror.Invalid(q.name, "%s must be between 1 and %d", q.name, interact.MaxTerminalSize))
				return
			}
			*q.dst = uint(n)
		}
	}
	req, err := h.ops.PrepareTerminal(c.Request.Context(), auth.From(c).UserID, id, in)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if !strings.EqualFold(c.GetHeader("Upgrade"), "websocket") {
		c.Header("Upgrade", "websocket")
		_ = c.Error(apierror.New(http.StatusUpgradeRequired, "websocket_required", "this route speaks WebSocket only"))
		return
	}
	ctx := middleware.Untimed(c)
	sess, err := req.Open(c.Request.Context())
	if err != nil {
		_ = c.Error(err)
		return
	}
	defer sess.Close()
	conn, err := websocket.Accept(c.Writer, c.Request, h.ws)
	if err != nil {
		return // Accept has answered (403 for a foreign origin, 400 for a bad handshake)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(terminalReadLimit)
	serveTerminal(ctx, conn, sess)
}

// serveTerminal pumps the terminal both ways until the command exits or the client goes away.
func serveTerminal(ctx context.Context, conn *websocket.Conn, sess *interact.Session) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	output := make(chan struct{})
	go func() {
		defer close(output)
		buf := make([]byte, 32<<10)
		for {
			n, err := sess.Read(buf)
			if n > 0 {
				if werr := conn.Write(ctx, websocket.MessageBinary, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
		waitCtx, done := context.WithTimeout(ctx, 10*time.Second)
		defer done()
		code, err := sess.Wait(waitCtx)
		if err != nil {
			_ = conn.Close(websocket.StatusInternalError, "the terminal ended without an exit code")
			return
		}
		_ = conn.Close(websocket.StatusNormalClosure, fmt.Sprintf(`{"exit_code":%d}`, code))
	}()

	go loop.Every(ctx, terminalPing, func(ctx context.Context) bool {
		pingCtx, done := context.WithTimeout(ctx, terminalPing/2)
		defer done()
		if err := conn.Ping(pingCtx); err != nil {
			_ = conn.CloseNow()
			return true
		}
		return false
	})

	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			break
		}
		if typ == websocket.MessageBinary {
			if _, err := sess.Write(data); err != nil {
				break
			}
			continue
		}
		var msg controlMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			_ = conn.Close(websocket.StatusUnsupportedData, "text messages must be JSON control messages")
			break
		}
		if msg.Type == "resize" {
			if interact.CheckTerminalSize(msg.Rows, msg.Cols) != nil {
				_ = conn.Close(websocket.StatusPolicyViolation, fmt.Sprintf("rows and cols must be between 1 and %d", interact.MaxTerminalSize))
				break
			}
			if err := sess.Resize(ctx, msg.Rows, msg.Cols); err != nil {
				break
			}
		} // other types are ignored, so clients may send newer ones
	}
	// The client left (or broke the protocol): kill the command, then let the output pump end.
	_ = sess.Close()
	cancel()
	<-output
}
