package interact

import "go.uber.org/fx"

// Module provides the service.
var Module = fx.Module("interact", fx.Provide(NewService))
