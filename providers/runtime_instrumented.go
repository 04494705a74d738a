package providers

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/insien/orchestrator/internal/platform/metrics"
	"github.com/insien/orchestrator/internal/platform/tracing"
	"github.com/insien/orchestrator/internal/runtimes"
)

// instrumentedDriver times the driver's lifecycle calls, counts their failures by operation and
// makes a span of each ("runtime.create", ...; a no-op while tracing is off). Work inside a
// sandbox (exec, files, terminals) is left out: how long it takes is the user's command.
// Optional interfaces (Images, ...) are found through Unwrap (runtimes.As).
type instrumentedDriver struct {
	Driver
	tracer   trace.Tracer
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func newInstrumentedDriver(d Driver, reg prometheus.Registerer, t *tracing.Tracing) *instrumentedDriver {
	labels := []string{"driver", "operation"}
	m := &instrumentedDriver{
		Driver: d,
		tracer: t.Tracer(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: metrics.Namespace, Subsystem: "runtime",
			Name: "call_duration_seconds", Help: "Time the sandbox runtime (Docker Engine or Kubernetes API) took per call, by operation.",
			Buckets: metrics.LatencyBuckets}, labels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "runtime",
			Name: "call_errors_total", Help: "Runtime calls that failed, by operation (a workload found missing or not running is an answer, not a failure)."}, labels),
	}
	reg.MustRegister(m.duration, m.errors)
	return m
}

func (d *instrumentedDriver) Unwrap() runtimes.Runtime { return d.Driver }

// call is one lifecycle call under way.
type call struct {
	d     *instrumentedDriver
	op    string
	start time.Time
	span  trace.Span
}

// begin starts timing op and its span (a child of ctx's); end it with a pointer to the call's error.
func (d *instrumentedDriver) begin(ctx context.Context, op string) (context.Context, call) {
	ctx, span := d.tracer.Start(ctx, "runtime."+op, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() { // while tracing is off the span is a no-op: spare building its attributes
		span.SetAttributes(attribute.String("runtime.driver", d.Name()), attribute.String("runtime.operation", op))
	}
	return ctx, call{d: d, op: op, start: time.Now(), span: span}
}

// end records the call: its duration, and its error when it is a failure (a workload found
// missing or not running is an answer, and a caller that went away is not the runtime's fault).
func (c call) end(err *error) {
	labels := prometheus.Labels{"driver": c.d.Name(), "operation": c.op}
	c.d.duration.With(labels).Observe(time.Since(c.start).Seconds())
	if e := *err; e != nil && !errors.Is(e, runtimes.ErrNotFound) && !errors.Is(e, runtimes.ErrNotRunning) && !errors.Is(e, context.Canceled) {
		c.d.errors.With(labels).Inc()
		c.span.RecordError(e)
		c.span.SetStatus(codes.Error, e.Error())
	}
	c.span.End()
}

func (d *instrumentedDriver) Ping(ctx context.Context) (err error) {
	ctx, c := d.begin(ctx, "ping")
	defer c.end(&err)
	return d.Driver.Ping(ctx)
}

func (d *instrumentedDriver) Create(ctx context.Context, spec runtimes.Spec) (id string, err error) {
	ctx, c := d.begin(ctx, "create")
	defer c.end(&err)
	return d.Driver.Create(ctx, spec)
}

func (d *instrumentedDriver) Start(ctx context.Context, id string) (err error) {
	ctx, c := d.begin(ctx, "start")
	defer c.end(&err)
	return d.Driver.Start(ctx, id)
}

func (d *instrumentedDriver) Stop(ctx context.Context, id string, grace time.Duration) (err error) {
	ctx, c := d.begin(ctx, "stop")
	defer c.end(&err)
	return d.Driver.Stop(ctx, id, grace)
}

func (d *instrumentedDriver) Remove(ctx context.Context, id string) (err error) {
	ctx, c := d.begin(ctx, "remove")
	defer c.end(&err)
	return d.Driver.Remove(ctx, id)
}

func (d *instrumentedDriver) Pause(ctx context.Context, id string) (err error) {
	ctx, c := d.begin(ctx, "pause")
	defer c.end(&err)
	return d.Driver.Pause(ctx, id)
}

func (d *instrumentedDriver) Resume(ctx context.Context, id string) (err error) {
	ctx, c := d.begin(ctx, "resume")
	defer c.end(&err)
	return d.Driver.Resume(ctx, id)
}

func (d *instrumentedDriver) Inspect(ctx context.Context, id string) (info runtimes.Info, err error) {
	ctx, c := d.begin(ctx, "inspect")
	defer c.end(&err)
	return d.Driver.Inspect(ctx, id)
}

func (d *instrumentedDriver) List(ctx context.Context, labels map[string]string) (infos []runtimes.Info, err error) {
	ctx, c := d.begin(ctx, "list")
	defer c.end(&err)
	return d.Driver.List(ctx, labels)
}

func (d *instrumentedDriver) Claim(ctx context.Context, id string, claim runtimes.Claim) (err error) {
	ctx, c := d.begin(ctx, "claim")
	defer c.end(&err)
	return d.Driver.Claim(ctx, id, claim)
}
