package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
)

// Module provides the registry (as itself and as the Registerer other packages take), the HTTP
// metrics and the metrics listener.
var Module = fx.Module("metrics",
	fx.Provide(NewRegistry),
	fx.Provide(func(reg *prometheus.Registry) prometheus.Registerer { return reg }),
	fx.Provide(NewHTTP),
	fx.Provide(NewServer),
	fx.Invoke(registerServer),
)
