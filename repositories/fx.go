package repositories

import "go.uber.org/fx"

// Module provides every repository.
var Module = fx.Module("repositories",
	fx.Provide(NewUsers),
	fx.Provide(NewAPIKeys),
	fx.Provide(NewSandboxes),
	fx.Provide(NewEvents),
	fx.Provide(NewWebhooks),
)
