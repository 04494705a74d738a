// Package providers turns configuration sections into the clients the service runs on: logger,
// Postgres, Redis, the sandbox runtime and the Gin engine.
package providers

import (
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Module provides the shared clients, registers their readiness checks and watches Postgres and
// Redis until they answer.
var Module = fx.Module("providers",
	fx.Provide(NewLogger),
	fx.Provide(NewDB),
	fx.Provide(NewRedis),
	fx.Provide(NewEngine),
	fx.Provide(fx.Annotate(NewRuntime, fx.As(new(runtimes.Runtime)), fx.As(new(runtimes.Interactive)), fx.As(new(runtimes.Ports)))),
	fx.Provide(fx.Annotate(dbCheck, fx.ResultTags(`group:"health_checks"`))),
	fx.Provide(fx.Annotate(redisCheck, fx.ResultTags(`group:"health_checks"`))),
	fx.Provide(fx.Annotate(runtimeCheck, fx.ResultTags(`group:"health_checks"`))),
	fx.Invoke(watchDB),
	fx.Invoke(routeRedisLogs),
	fx.Invoke(watchRedis),
	fx.Invoke(registerPoolMetrics),
	fx.Invoke(traceClients),
)
