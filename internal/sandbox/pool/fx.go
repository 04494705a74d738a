package pool

import "go.uber.org/fx"

// Module provides the warm pools and maintains them from the app's start to its stop.
var Module = fx.Module("pool",
	fx.Provide(New),
	fx.Invoke(func(lc fx.Lifecycle, p *Pool) { lc.Append(fx.StartStopHook(p.Start, p.Stop)) }),
)
