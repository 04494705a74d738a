package events

import "go.uber.org/fx"

// Module provides the event log's service and runs its retention sweep with the app.
var Module = fx.Module("events",
	fx.Provide(NewService),
	fx.Invoke(func(lc fx.Lifecycle, s *Service) { lc.Append(fx.StartStopHook(s.Start, s.Stop)) }),
)
