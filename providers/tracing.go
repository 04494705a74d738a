package providers

import (
	"fmt"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/extra/bunotel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/insien/orchestrator/internal/platform/tracing"
)

// traceClients makes a span of every Postgres query and Redis command made inside a trace, as a
// child of the span in its context (the request's); background polls outside any trace make
// none (tracing.ChildTracerProvider). While tracing is off the clients get no hook at all, so a query
// or a command costs what it did before. Hooks are added here rather than in NewDB/NewRedis,
// which the commands and tests also use without the graph.
func traceClients(t *tracing.Tracing, db *bun.DB, rdb *redis.Client) error {
	if !t.Enabled() {
		return nil
	}
	// Statements without their arguments (bun's default): the spans never carry user data.
	db.AddQueryHook(bunotel.NewQueryHook(
		bunotel.WithTracerProvider(t.ChildTracerProvider()),
		bunotel.WithMeterProvider(metricnoop.NewMeterProvider()), // pool metrics are Prometheus's
	))
	// Command names only: arguments hold cached sandbox views and keys, and the caller's
	// file:line costs a stack walk per command.
	if err := redisotel.InstrumentTracing(rdb,
		redisotel.WithTracerProvider(t.ChildTracerProvider()),
		redisotel.WithDBStatement(false),
		redisotel.WithCallerEnabled(false),
	); err != nil {
		return fmt.Errorf("tracing redis commands: %w", err)
	}
	return nil
}
