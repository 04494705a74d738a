package ratelimit

import "go.uber.org/fx"

// Module provides the *Limiter that the route registration places on the API's routes.
var Module = fx.Module("ratelimit",
	fx.Provide(New),
)
