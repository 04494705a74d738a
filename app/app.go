// Package app assembles the one Fx graph of the service and owns the HTTP server lifecycle.
package app

import (
	"time"

	"go.uber.org/fx"

	"github.com/insien/orchestrator/handlers"
	"github.com/insien/orchestrator/internal/events"
	eventwebhooks "github.com/insien/orchestrator/internal/events/webhooks"
	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/identity/auth"
	"github.com/insien/orchestrator/internal/identity/clerkauth"
	"github.com/insien/orchestrator/internal/identity/users"
	"github.com/insien/orchestrator/internal/identity/webhooks"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/health"
	"github.com/insien/orchestrator/internal/platform/metrics"
	"github.com/insien/orchestrator/internal/platform/middleware"
	"github.com/insien/orchestrator/internal/platform/ratelimit"
	"github.com/insien/orchestrator/internal/platform/tracing"
	"github.com/insien/orchestrator/internal/sandbox/egress"
	"github.com/insien/orchestrator/internal/sandbox/envcrypt"
	"github.com/insien/orchestrator/internal/sandbox/interact"
	"github.com/insien/orchestrator/internal/sandbox/lifecycle"
	"github.com/insien/orchestrator/internal/sandbox/liveconns"
	"github.com/insien/orchestrator/internal/sandbox/pool"
	"github.com/insien/orchestrator/internal/sandbox/ports"
	"github.com/insien/orchestrator/internal/sandbox/templates"
	"github.com/insien/orchestrator/internal/sandbox/volumes"
	"github.com/insien/orchestrator/migrations"
	"github.com/insien/orchestrator/providers"
	"github.com/insien/orchestrator/repositories"
)

// closeBudget bounds closing the clients after the HTTP server has stopped.
const closeBudget = 15 * time.Second

// Options is the whole service graph for cfg. extra lets tests add fx.Populate or fx.Decorate.
func Options(cfg *config.Config, extra ...fx.Option) fx.Option {
	return fx.Options(
		fx.Supply(cfg),
		config.Module,
		fx.WithLogger(providers.NewFxLogger),
		health.Module,
		metrics.Module,
		tracing.Module,
		middleware.Module,
		providers.Module,
		migrations.Module,
		repositories.Module,
		clerkauth.Module,
		ratelimit.Module,
		apikeys.Module,
		users.Module,
		auth.Module,
		webhooks.Module,
		envcrypt.Module,
		liveconns.Module,
		pool.Module,
		egress.Module,
		volumes.Module,
		templates.Module,
		lifecycle.Module,
		events.Module,
		eventwebhooks.Module,
		interact.Module,
		ports.Module,
		handlers.Module,
		Module, // last: the server starts after all it reaches and stops before it
		fx.StartTimeout(cfg.Database.ConnectTimeout+cfg.Health.CheckTimeout+closeBudget),
		fx.StopTimeout(StopTimeout(cfg)),
		fx.Options(extra...),
	)
}

// StopTimeout is larger than drain delay + shutdown timeout + closing the clients.
func StopTimeout(cfg *config.Config) time.Duration {
	return cfg.HTTP.DrainDelay + cfg.HTTP.ShutdownTimeout + closeBudget
}
