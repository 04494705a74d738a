// Package app assembles the one Fx graph of the service and owns the HTTP server lifecycle.
package app

import (
	"time"

	"go.uber.org/fx"

	"github.com/insien/orchestrator/apikeys"
	"github.com/insien/orchestrator/auth"
	"github.com/insien/orchestrator/clerkauth"
	"github.com/insien/orchestrator/config"
	"github.com/insien/orchestrator/connections"
	"github.com/insien/orchestrator/handlers"
	"github.com/insien/orchestrator/migrations"
	"github.com/insien/orchestrator/providers"
	"github.com/insien/orchestrator/ratelimit"
	"github.com/insien/orchestrator/repositories"
	"github.com/insien/orchestrator/sandboxes"
	"github.com/insien/orchestrator/sandboxops"
	"github.com/insien/orchestrator/secrets"
	"github.com/insien/orchestrator/users"
	"github.com/insien/orchestrator/webhooks"
)

// closeBudget bounds closing the clients after the HTTP server has stopped.
const closeBudget = 15 * time.Second

// Options is the whole service graph for cfg. extra lets tests add fx.Populate or fx.Decorate.
func Options(cfg *config.Config, extra ...fx.Option) fx.Option {
	return fx.Options(
		config.Module(cfg),
		fx.WithLogger(providers.NewFxLogger),
		providers.Module,
		migrations.Module,
		repositories.Module,
		clerkauth.Module,
		ratelimit.Module,
		apikeys.Module,
		users.Module,
		auth.Module,
		webhooks.Module,
		secrets.Module,
		connections.Module,
		sandboxes.Module,
		sandboxops.Module,
		handlers.Module,
		fx.Provide(NewServer),
		fx.Invoke(func(lc fx.Lifecycle, s *Server) { lc.Append(fx.StartStopHook(s.Start, s.Stop)) }),
		fx.StartTimeout(cfg.Database.ConnectTimeout+cfg.Health.CheckTimeout+closeBudget),
		fx.StopTimeout(StopTimeout(cfg)),
		fx.Options(extra...),
	)
}

// StopTimeout is larger than drain delay + shutdown timeout + closing the clients.
func StopTimeout(cfg *config.Config) time.Duration {
	return cfg.HTTP.DrainDelay + cfg.HTTP.ShutdownTimeout + closeBudget
}
