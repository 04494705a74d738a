// Package metrics owns the service's Prometheus registry, serves it on a listener of its own (the
// public port never exposes it) and measures every HTTP request. Other packages register their own
// metrics on the Registerer it provides; every name starts with Namespace.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes the service's own metric names.
const Namespace = "insien"

// NewRegistry is a registry with the Go runtime's and the process's collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// LatencyBuckets are the histogram buckets, in seconds, of everything the service times: from a
// cached API call (sub-millisecond) to a cold sandbox start or an image build step (seconds).
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
