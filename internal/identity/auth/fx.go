package auth

import "go.uber.org/fx"

// Module provides the authenticator.
var Module = fx.Module("auth", fx.Provide(NewAuthenticator))
