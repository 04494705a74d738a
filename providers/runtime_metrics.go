package providers

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/insien/orchestrator/internal/platform/metrics"
	"github.com/insien/orchestrator/internal/runtimes"
)

// meteredDriver times the driver's lifecycle calls and counts their failures by operation. Work
// inside a sandbox (exec, files, terminals) is left out: how long it takes is the user's command.
// Optional interfaces (Images, ...) are found through Unwrap (runtimes.As).
type meteredDriver struct {
	Driver
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func newMeteredDriver(d Driver, reg prometheus.Registerer) *meteredDriver {
	labels := []string{"driver", "operation"}
	m := &meteredDriver{
		Driver: d,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: metrics.Namespace, Subsystem: "runtime",
			Name: "call_duration_seconds", Help: "Time the sandbox runtime (Docker Engine or Kubernetes API) took per call, by operation.",
			Buckets: metrics.LatencyBuckets}, labels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "runtime",
			Name: "call_errors_total", Help: "Runtime calls that failed, by operation (a workload found missing or not running is an answer, not a failure)."}, labels),
	}
	reg.MustRegister(m.duration, m.errors)
	return m
}

func (d *meteredDriver) Unwrap() runtimes.Runtime { return d.Driver }

// done records a call that began at start; deferred with a pointer to the call's error.
func (d *meteredDriver) done(op string, start time.Time, err *error) {
	labels := prometheus.Labels{"driver": d.Name(), "operation": op}
	d.duration.With(labels).Observe(time.Since(start).Seconds())
	if e := *err; e != nil && !errors.Is(e, runtimes.ErrNotFound) && !errors.Is(e, runtimes.ErrNotRunning) && !errors.Is(e, context.Canceled) {
		d.errors.With(labels).Inc()
	}
}

func (d *meteredDriver) Ping(ctx context.Context) (err error) {
	defer d.done("ping", time.Now(), &err)
	return d.Driver.Ping(ctx)
}

func (d *meteredDriver) Create(ctx context.Context, spec runtimes.Spec) (id string, err error) {
	defer d.done("create", time.Now(), &err)
	return d.Driver.Create(ctx, spec)
}

func (d *meteredDriver) Start(ctx context.Context, id string) (err error) {
	defer d.done("start", time.Now(), &err)
	return d.Driver.Start(ctx, id)
}

func (d *meteredDriver) Stop(ctx context.Context, id string, grace time.Duration) (err error) {
	defer d.done("stop", time.Now(), &err)
	return d.Driver.Stop(ctx, id, grace)
}

func (d *meteredDriver) Remove(ctx context.Context, id string) (err error) {
	defer d.done("remove", time.Now(), &err)
	return d.Driver.Remove(ctx, id)
}

func (d *meteredDriver) Pause(ctx context.Context, id string) (err error) {
	defer d.done("pause", time.Now(), &err)
	return d.Driver.Pause(ctx, id)
}

func (d *meteredDriver) Resume(ctx context.Context, id string) (err error) {
	defer d.done("resume", time.Now(), &err)
	return d.Driver.Resume(ctx, id)
}

func (d *meteredDriver) Inspect(ctx context.Context, id string) (info runtimes.Info, err error) {
	defer d.done("inspect", time.Now(), &err)
	return d.Driver.Inspect(ctx, id)
}

func (d *meteredDriver) List(ctx context.Context, labels map[string]string) (infos []runtimes.Info, err error) {
	defer d.done("list", time.Now(), &err)
	return d.Driver.List(ctx, labels)
}

func (d *meteredDriver) Claim(ctx context.Context, id string, c runtimes.Claim) (err error) {
	defer d.done("claim", time.Now(), &err)
	return d.Driver.Claim(ctx, id, c)
}
