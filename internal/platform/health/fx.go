package health

import "go.uber.org/fx"

// Module provides the *Readiness that the probes answer from and the server turns off at shutdown.
var Module = fx.Module("health",
	fx.Provide(NewReadiness),
)
