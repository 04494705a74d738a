package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/config"
	"github.com/insien/orchestrator/health"
)

// Server owns the HTTP listener and the shutdown sequence: readiness off → drain delay →
// http.Server.Shutdown (in-flight requests finish) → Fx then closes the clients.
type Server struct {
	cfg       config.HTTP
	srv       *http.Server
	readiness *health.Readiness
	log       *zap.Logger
	addr      net.Addr
	served    chan error
}

// NewServer wires the engine into an http.Server with the configured timeouts.
func NewServer(cfg config.HTTP, engine *gin.Engine, readiness *health.Readiness, log *zap.Logger) *Server {
	return &Server{
		cfg:       cfg,
		readiness: readiness,
		log:       log.Named("server"),
		srv: &http.Server{
			Addr:              cfg.Addr(),
			Handler:           engine,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			ErrorLog:          zap.NewStdLog(log.Named("net/http")),
		},
	}
}

// Start binds the port synchronously, so a busy port fails start-up, then serves in the background.
func (s *Server) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return err
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
	if err := s.srv.Shutdown(shutdownCtx); err != nil {
		_ = s.srv.Close()
		return err
	}
	if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.log.Info("http server stopped")
	return nil
}

// Addr is the bound address (useful when the configured port is 0).
func (s *Server) Addr() net.Addr { return s.addr }
