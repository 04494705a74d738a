package apikeys

import "go.uber.org/fx"

// Module provides the key service and runs its background work (revocation announcements, key
// use writes) with the app.
var Module = fx.Module("apikeys",
	fx.Provide(NewService),
	fx.Invoke(run),
)

// run starts the service's background work with the app and stops it, writing pending key uses,
// before the clients it needs close.
func run(lc fx.Lifecycle, s *Service) { lc.Append(fx.StartStopHook(s.Start, s.Stop)) }
