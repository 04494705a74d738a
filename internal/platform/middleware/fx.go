package middleware

import "go.uber.org/fx"

// Module provides the *Streams tracker that the engine records long-lived requests in and the
// server ends at shutdown.
var Module = fx.Module("middleware",
	fx.Provide(NewStreams),
)
