// Package ports makes TCP ports inside a sandbox reachable through the orchestrator, HTTP and
// WebSocket alike, without giving the sandbox any network: by an authenticated API path, and by
// preview URLs (a host per sandbox and port under preview.domain) opened by signed, expiring
// tokens exchanged for a cookie.
package ports

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/fx"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/egress"
	"github.com/insien/orchestrator/internal/sandbox/envcrypt"
	"github.com/insien/orchestrator/internal/sandbox/lifecycle"
	"github.com/insien/orchestrator/internal/sandbox/model"
)

// Service proxies requests to sandbox ports and issues preview URLs.
type Service struct {
	sandboxes *lifecycle.Service
	rt        runtimes.Ports
	sealer    *envcrypt.Sealer
	cfg       config.Preview
	egress    *egress.Service // knows the orchestrator's own ports inside sandboxes
	transport *http.Transport
	log       *zap.Logger
}

// Params are the service's dependencies.
type Params struct {
	fx.In
	Sandboxes *lifecycle.Service
	Runtime   runtimes.Ports
	Sealer    *envcrypt.Sealer
	Preview   config.Preview
	Egress    *egress.Service
	Log       *zap.Logger
}

// NewService builds the service. Connections to an app are kept alive and reused per sandbox
// and port (the transport's pool is keyed by the workload and port it dials).
func NewService(p Params) *Service {
	s := &Service{sandboxes: p.Sandboxes, rt: p.Runtime, sealer: p.Sealer, cfg: p.Preview, egress: p.Egress,
		log: p.Log.Named("ports")}
	s.transport = &http.Transport{
		DialContext:           s.dial,
		ResponseHeaderTimeout: p.Preview.ResponseHeaderTimeout,
		IdleConnTimeout:       30 * time.Second,
		MaxIdleConnsPerHost:   16,
		DisableCompression:    true, // pass the app's encoding through untouched
	}
	return s
}

// Close drops the connections kept alive to apps.
func (s *Service) Close() { s.transport.CloseIdleConnections() }

// Target returns a user's sandbox whose port is to be reached: 404 when it is not theirs, 409
// when it is not running.
func (s *Service) Target(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error) {
	sb, _, err := s.sandboxes.View(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if err := reachable(sb); err != nil {
		return nil, err
	}
	return sb, nil
}

// reachable refuses a sandbox whose ports cannot be reached: 409 unless it runs.
func reachable(sb *model.Sandbox) error {
	if sb.Status != model.StatusRunning || sb.RuntimeID == nil {
		return apierror.Conflict("sandbox_not_running", "sandbox is %s; only a running sandbox's ports can be reached", sb.Status)
	}
	return nil
}

// ParsePort reads a port number from a path: 1 to 65535, none of the orchestrator's own (where
// a sandbox's egress is served: network.proxy_port, network.dns_port).
func (s *Service) ParsePort(raw string) (int, error) {
	port, err := strconv.Atoi(raw)
	if err != nil || port < 1 || port > 65535 || raw != strconv.Itoa(port) {
		return 0, apierror.Invalid("port", "port must be a number from 1 to 65535, got %q", raw)
	}
	if s.egress.Reserved(port) {
		return 0, apierror.Invalid("port", "port %d is the orchestrator's own inside sandboxes (their egress); apps cannot use it", port)
	}
	return port, nil
}

// Request is one request to forward to an app.
type Request struct {
	Sandbox *model.Sandbox
	Port    int
	Path    string // the path the app sees
	// Strip drops a query parameter the orchestrator consumed (a preview URL's token).
	Strip string
}

// Forward sends r to the app and streams its answer (a WebSocket upgrade included) to w. The app
// sees Host localhost:<port>, as if it were browsed from inside the sandbox, the caller's address
// and host in X-Forwarded-*, and none of the orchestrator's credentials: no Authorization, no
// X-API-Key, none of its cookies or Clerk's. An error is returned, not written, when no response
// was started (nothing listening, the sandbox gone, the app silent past the header timeout).
func (s *Service) Forward(w http.ResponseWriter, r *http.Request, req Request) error {
	// Use of an app is use of its sandbox (auto_extend); a WebSocket counts as a live connection
	// for as long as it is open.
	if httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") {
		release, err := s.sandboxes.Connect(r.Context(), req.Sandbox)
		if err != nil {
			return err
		}
		defer release()
	} else {
		s.sandboxes.Touch(r.Context(), req.Sandbox)
	}
	var failed error
	proxy := &httputil.ReverseProxy{
		Transport:     s.transport,
		FlushInterval: -1, // event streams and long polls reach the client as they are written
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = net.JoinHostPort(*req.Sandbox.RuntimeID, strconv.Itoa(req.Port))
			pr.Out.URL.Path, pr.Out.URL.RawPath = req.Path, ""
			if req.Strip != "" {
				q := pr.Out.URL.Query()
				q.Del(req.Strip)
				pr.Out.URL.RawQuery = q.Encode()
			}
			pr.Out.Host = "localhost:" + strconv.Itoa(req.Port)
			stripCredentials(pr.Out.Header)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) { failed = err },
	}
	proxy.ServeHTTP(w, r)
	if failed == nil {
		return nil
	}
	return s.proxyError(req, failed)
}

// proxyError says why an app could not be reached, in the API's terms.
func (s *Service) proxyError(req Request, err error) error {
	var notRunning *runtimes.NotRunningError
	var netErr net.Error
	switch {
	case errors.Is(err, runtimes.ErrPortNotListening):
		return apierror.BadGateway("port_not_listening", "nothing listens on port %d in sandbox %s", req.Port, req.Sandbox.ID)
	case errors.As(err, &notRunning), errors.Is(err, runtimes.ErrNotFound):
		return apierror.Conflict("sandbox_not_running", "sandbox %s is not running", req.Sandbox.ID)
	case errors.Is(err, context.Canceled):
		return err // the client left
	case errors.As(err, &netErr) && netErr.Timeout():
		return apierror.New(http.StatusGatewayTimeout, "port_timeout",
			"the app on port %d in sandbox %s did not answer within %s", req.Port, req.Sandbox.ID, s.cfg.ResponseHeaderTimeout).WithCause(err)
	default:
		return apierror.BadGateway("port_unreachable", "the app on port %d in sandbox %s broke off the exchange", req.Port, req.Sandbox.ID).WithCause(err)
	}
}

// dial connects to the workload and port a forwarded request's URL names, and bounds how long
// the app may stay silent on that connection.
func (s *Service) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	workload, rawPort, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(rawPort)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", rawPort, err)
	}
	conn, err := s.rt.DialPort(ctx, workload, port)
	if err != nil {
		return nil, err
	}
	return &idleConn{Conn: conn, idle: s.cfg.IdleTimeout}, nil
}

// idleConn ends a connection to an app that sends nothing for idle: an app that stalls mid-answer
// (or a WebSocket nobody uses) does not hold the orchestrator's resources forever.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// stripCredentials removes what authenticates a caller to the orchestrator, so that an app in a
// sandbox never sees it.
func stripCredentials(h http.Header) {
	h.Del("Authorization")
	h.Del("X-API-Key")
	cookies := h.Values("Cookie")
	h.Del("Cookie")
	var kept []string
	for _, line := range cookies {
		for part := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if name != "" && !orchestratorCookie(name) {
				kept = append(kept, strings.TrimSpace(part))
			}
		}
	}
	if len(kept) > 0 {
		h.Set("Cookie", strings.Join(kept, "; "))
	}
}

// orchestratorCookie tells the orchestrator's cookies (preview grants) and Clerk's sessions from
// an app's own.
func orchestratorCookie(name string) bool {
	for _, prefix := range []string{CookieName, "__session", "__client_uat", "__clerk", "__refresh"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}
