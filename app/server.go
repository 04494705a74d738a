package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/health"
	"github.com/insien/orchestrator/internal/platform/middleware"
)

// Server owns the HTTP listener and the shutdown sequence: readiness off → drain delay →
// http.Server.Shutdown (in-flight requests finish) → Fx then closes the clients.
type Server struct {
	cfg       config.HTTP
	srv       *http.Server
	streams   *middleware.Streams
	readiness *health.Readiness
	log       *zap.Logger
	addr      net.Addr
	served    chan error
}

// ServerParams is what the server is built from.
type ServerParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	HTTP      config.HTTP
	Engine    *gin.Engine
	Streams   *middleware.Streams
	Readiness *health.Readiness
	Log       *zap.Logger
}

// NewServer wires the engine into an http.Server with the configured timeouts, started and
// stopped with the application.
func NewServer(p ServerParams) *Server {
	s := &Server{
		cfg:       p.HTTP,
		streams:   p.Streams,
		readiness: p.Readiness,
		log:       p.Log.Named("server"),
		srv: &http.Server{
			Addr:              p.HTTP.Addr(),
			Handler:           middleware.HeadAsGet(p.Engine), // HEAD on every GET route
			ReadHeaderTimeout: p.HTTP.ReadHeaderTimeout,
			ReadTimeout:       p.HTTP.ReadTimeout,
			WriteTimeout:      p.HTTP.WriteTimeout,
			IdleTimeout:       p.HTTP.IdleTimeout,
			ErrorLog:          zap.NewStdLog(p.Log.Named("net/http")),
		},
	}
	p.Lifecycle.Append(fx.StartStopHook(s.Start, s.Stop))
	return s
}

// Start binds the port synchronously, so a busy port fails start-up, then serves in the background.
func (s *Server) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return fmt.Errorf("http server: %w", err)
	}
	s.addr = ln.Addr()
	s.served = make(chan error, 1)
	go func() { s.served <- s.srv.Serve(ln) }()
	s.log.Info("listening", zap.String("addr", s.addr.String()))
	return nil
}

// Stop fails readiness at once, waits the drain delay so load balancers notice, then lets
// in-flight requests finish within the shutdown timeout.
func (s *Server) Stop(ctx context.Context) error {
	s.readiness.BeginShutdown()
	s.log.Info("shutting down", zap.Duration("drain_delay", s.cfg.DrainDelay))
	select {
	case <-time.After(s.cfg.DrainDelay):
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- s.srv.Shutdown(shutdownCtx) }()
	// Streams (SSE, followed logs, terminals) never end by themselves: ordinary requests get half
	// the shutdown budget to finish, then the streams are told to end and are waited for
	// (terminals too, which Shutdown does not track), so their commands are cleaned up before
	// the clients below them close.
	var err error
	finished := false
	select {
	case err = <-shutdown:
		finished = true
	case <-time.After(s.cfg.ShutdownTimeout / 2):
	}
	if serr := s.streams.End(shutdownCtx); serr != nil {
		s.log.Warn("streams still open at the shutdown deadline", zap.Error(serr))
	}
	if !finished {
		err = <-shutdown
	}
	if err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("http server: shutdown: %w", err)
	}
	if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: serve: %w", err)
	}
	s.log.Info("http server stopped")
	return nil
}

// Addr is the bound address (useful when the configured port is 0).
func (s *Server) Addr() net.Addr { return s.addr }
