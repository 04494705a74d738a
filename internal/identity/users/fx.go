package users

import "go.uber.org/fx"

// Module provides the user service.
var Module = fx.Module("users", fx.Provide(NewService))
