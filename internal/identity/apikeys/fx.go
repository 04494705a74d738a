package apikeys

import "go.uber.org/fx"

// Module provides the key service.
var Module = fx.Module("apikeys", fx.Provide(NewService))
