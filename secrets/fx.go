package secrets

import "go.uber.org/fx"

// Module provides the sealer.
var Module = fx.Module("secrets", fx.Provide(NewFromConfig))
