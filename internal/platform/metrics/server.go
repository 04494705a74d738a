package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
)

// scrapeTimeout bounds a scrape's wait for the collectors that read Postgres or Redis.
const scrapeTimeout = 10 * time.Second

// Server serves GET /metrics on metrics.addr.
type Server struct {
	srv  *http.Server
	addr net.Addr
	log  *zap.Logger
}

// NewServer builds the listener's server for reg; nothing listens when cfg.Addr is empty.
func NewServer(cfg config.Metrics, reg *prometheus.Registry, log *zap.Logger) *Server {
	log = log.Named("metrics")
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry: reg, ErrorLog: zap.NewStdLog(log), Timeout: scrapeTimeout,
		// A scrape whose collector failed still returns what the others gathered.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return &Server{
		srv: &http.Server{Addr: cfg.Addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: scrapeTimeout + 5*time.Second},
		log: log,
	}
}

// Start listens and serves in the background; an address that cannot be bound fails start-up.
func (s *Server) Start(context.Context) error {
	if s.srv.Addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return &config.Error{Key: "metrics.addr", Reason: err.Error()}
	}
	s.addr = ln.Addr()
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("the metrics listener stopped", zap.Error(err))
		}
	}()
	s.log.Info("serving metrics", zap.Stringer("addr", s.addr))
	return nil
}

// Stop ends the listener and waits for scrapes in progress.
func (s *Server) Stop(ctx context.Context) error {
	if s.addr == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

// Addr is the address the listener bound (nil when disabled), for tests that ask for port 0.
func (s *Server) Addr() net.Addr { return s.addr }

func registerServer(lc fx.Lifecycle, s *Server) {
	lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
}
