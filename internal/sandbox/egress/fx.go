package egress

import "go.uber.org/fx"

// Module provides the service and stops serving every sandbox at stop (their connections out are
// refused until a replica serves them again).
var Module = fx.Module("egress",
	fx.Provide(NewService),
	fx.Invoke(func(lc fx.Lifecycle, s *Service) { lc.Append(fx.StopHook(s.Close)) }),
)
