package liveconns

import "go.uber.org/fx"

// Module provides the registry.
var Module = fx.Module("liveconns", fx.Provide(NewRegistry))
