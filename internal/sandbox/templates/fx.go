package templates

import "go.uber.org/fx"

// Module provides the service; at start it fails what a previous life left building, at stop it
// cancels the builds under way.
var Module = fx.Module("templates",
	fx.Provide(NewService),
	fx.Invoke(func(lc fx.Lifecycle, s *Service) { lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop}) }),
)
