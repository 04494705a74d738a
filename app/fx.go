package app

import "go.uber.org/fx"

// Module runs the HTTP server. Options places it after every other module, so the server starts
// last and stops first: no request arrives before the services it reaches are up, and none is
// still in flight when they stop.
var Module = fx.Module("app",
	fx.Provide(NewServer),
	fx.Invoke(func(*Server) {}), // nothing depends on the server: ask for it so it runs
)
