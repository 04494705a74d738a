package providers

import (
	"slices"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/metrics"
	"github.com/insien/orchestrator/internal/platform/middleware"
	"github.com/insien/orchestrator/internal/platform/tracing"
)

// ProbePaths are the Kubernetes probe routes; their requests are logged at debug level.
var ProbePaths = []string{"/health", "/livez", "/ready", "/readyz"}

// EngineParams lets endpoint families give single routes their own body limit, and brings the
// stream tracker the server ends at shutdown.
type EngineParams struct {
	fx.In
	HTTP    config.HTTP
	App     config.App
	Log     *zap.Logger
	Streams *middleware.Streams
	Metrics *metrics.HTTP
	Tracing *tracing.Tracing
	Limits  []middleware.RouteLimit `group:"body_limits"`
	// Gateways serve whole hosts that are not the API (preview hosts): they run before the API's
	// own headers, CORS and body limit, and abort the chain for what they serve.
	Gateways []gin.HandlerFunc `group:"gateways"`
}

// NewEngine builds the Gin engine with the edge middleware in the documented order: metrics →
// tracing (when on) → recovery → request id → request log → error writer → stream tracker →
// timeout → gateways (preview hosts) → security headers → CORS → body limit.
// Authentication and rate limiting are applied per route group by the handlers.
func NewEngine(p EngineParams) (*gin.Engine, error) {
	cfg, log := p.HTTP, p.Log
	if p.App.Development() {
		gin.SetMode(gin.DebugMode)
	} else {
		gin.SetMode(gin.ReleaseMode)
	}
	engine := gin.New()
	engine.HandleMethodNotAllowed = true
	engine.ContextWithFallback = true // c.Done()/c.Value() follow the request context and its timeout
	if err := engine.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, &config.Error{Key: "http.trusted_proxies", Reason: err.Error()}
	}
	engine.Use(p.Metrics.Middleware()) // first: it records the status recovery writes for a panic
	if p.Tracing.Enabled() {
		// Before recovery, so a panic's 500 is on the span; before the request log, which reads
		// the span's trace id.
		engine.Use(traceRequests(p.Tracing))
	}
	engine.Use(
		middleware.Recovery(log),
		middleware.RequestIDs(),
		middleware.RequestLog(log.Named("http"), ProbePaths...),
		middleware.Errors(log.Named("http")),
		p.Streams.Middleware(),
		middleware.Timeout(cfg.RequestTimeout),
	)
	engine.Use(p.Gateways...)
	engine.Use(
		middleware.SecurityHeaders(),
		middleware.CORS(cfg.CORS),
		middleware.BodyLimit(cfg.MaxBodyBytes, p.Limits...),
	)
	engine.NoRoute(middleware.NotFound)
	engine.NoMethod(middleware.MethodNotAllowed)
	return engine, nil
}

// traceRequests makes a server span per request, named by method and route template, continuing
// the caller's trace when the request carries a traceparent. Probes are not traced.
func traceRequests(t *tracing.Tracing) gin.HandlerFunc {
	return otelgin.Middleware("",
		otelgin.WithTracerProvider(t.TracerProvider()),
		otelgin.WithPropagators(t.Propagator()),
		otelgin.WithMeterProvider(metricnoop.NewMeterProvider()), // request metrics are Prometheus's
		otelgin.WithGinFilter(func(c *gin.Context) bool { return !slices.Contains(ProbePaths, c.Request.URL.Path) }),
	)
}
