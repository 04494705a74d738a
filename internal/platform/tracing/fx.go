package tracing

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
)

// Module provides the *Tracing built from the tracing section, flushed when the service stops.
// Tests swap it with fx.Replace(New(..., WithSyncExporter(exp))).
var Module = fx.Module("tracing",
	fx.Provide(newTracing),
)

// flushBudget bounds the last export at stop, so an unreachable collector cannot hold shutdown.
const flushBudget = 5 * time.Second

func newTracing(lc fx.Lifecycle, cfg config.Tracing, app config.App, log *zap.Logger) (*Tracing, error) {
	t, err := New(cfg, app.InstanceName())
	if err != nil {
		return nil, err
	}
	if t.Enabled() {
		// The SDK reports failed exports through OpenTelemetry's global error handler, by default
		// the standard library's logger: send them to ours.
		otelLog := log.Named("tracing")
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { otelLog.Warn("exporting spans", zap.Error(err)) }))
	}
	// Appended when the tracer is first needed, so before the hooks of everything that makes
	// spans with it (the runtime, the services, the HTTP server): it stops after them and exports
	// their last spans.
	lc.Append(fx.StopHook(func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, flushBudget)
		defer cancel()
		return t.Shutdown(ctx)
	}))
	return t, nil
}
