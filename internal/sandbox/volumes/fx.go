package volumes

import "go.uber.org/fx"

// Module provides the service. Nothing runs at start: a volume is mounted (again, after a host
// restart) when a sandbox about to bind it finds it unmounted.
var Module = fx.Module("volumes", fx.Provide(NewService))
