package clerkauth

import "go.uber.org/fx"

// Module provides the session-token *Verifier and the Backend API *Users client from config.Clerk.
var Module = fx.Module("clerkauth",
	fx.Provide(NewVerifier),
	fx.Provide(NewUsers),
)
