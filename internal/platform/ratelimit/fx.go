package ratelimit

import "go.uber.org/fx"

// Module provides the *Limiter that the route registration places on the API's routes, and
// reconciles its buckets with Redis while the app runs.
var Module = fx.Module("ratelimit",
	fx.Provide(New),
	fx.Invoke(run),
)

// run reconciles from start to stop; the last reconciliation charges what was let through since
// the one before, before the Redis client closes.
func run(lc fx.Lifecycle, l *Limiter) { lc.Append(fx.StartStopHook(l.Start, l.Stop)) }
