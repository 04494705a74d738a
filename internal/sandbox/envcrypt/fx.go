package envcrypt

import "go.uber.org/fx"

// Module provides the sealer.
var Module = fx.Module("envcrypt", fx.Provide(New))
