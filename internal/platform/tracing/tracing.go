// Package tracing builds the service's OpenTelemetry tracer provider from the tracing section:
// spans exported over OTLP/HTTP to a collector, or, while tracing.endpoint is empty, a no-op
// provider so that instrumented code pays next to nothing and nothing is exported.
package tracing

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/insien/orchestrator/internal/platform/config"
)

// Scope is the instrumentation scope of the spans the service makes itself (runtime calls, ...).
const Scope = "github.com/insien/orchestrator"

// Tracing is the tracer provider and the propagator every instrumented client and middleware
// uses. Nothing is set globally: take it from the graph.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil while tracing is off
}

type options struct {
	exporter sdktrace.SpanExporter
}

// Option changes how New builds the provider.
type Option func(*options)

// WithSyncExporter sends each span to exp as it ends instead of batching it to tracing.endpoint,
// and turns tracing on whatever tracing.endpoint says: tests read spans with tracetest's
// in-memory exporter.
func WithSyncExporter(exp sdktrace.SpanExporter) Option {
	return func(o *options) { o.exporter = exp }
}

// New builds the provider for cfg; instance names this replica (service.instance.id). While
// tracing is off no exporter is created and every span is a no-op.
func New(cfg config.Tracing, instance string, opts ...Option) (*Tracing, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var export sdktrace.TracerProviderOption
	switch {
	case o.exporter != nil:
		export = sdktrace.WithSyncer(o.exporter)
	case cfg.Enabled():
		exp, err := otlptracehttp.New(context.Background(), exporterOptions(cfg.Endpoint)...)
		if err != nil {
			return nil, &config.Error{Key: "tracing.endpoint", Reason: err.Error()}
		}
		export = sdktrace.WithBatcher(exp)
	default:
		return &Tracing{provider: noop.NewTracerProvider()}, nil
	}
	res := resource.NewSchemaless(semconv.ServiceName(cfg.ServiceName), semconv.ServiceInstanceID(instance))
	sdk := sdktrace.NewTracerProvider(
		export,
		sdktrace.WithResource(res),
		// A caller that sampled (or dropped) the trace decides; new traces are kept at the ratio.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return &Tracing{provider: sdk, sdk: sdk}, nil
}

// exporterOptions points the OTLP/HTTP exporter at endpoint: a base URL gets the standard
// /v1/traces path (as OTEL_EXPORTER_OTLP_ENDPOINT does), a URL with a path is used as it is; the
// scheme chooses TLS. Headers, certificates and timeouts come from the standard
// OTEL_EXPORTER_OTLP_* environment variables, which the exporter reads itself.
func exporterOptions(endpoint string) []otlptracehttp.Option {
	u, err := url.Parse(endpoint)
	if err == nil && (u.Path == "" || u.Path == "/") {
		u.Path = "/v1/traces"
		endpoint = u.String()
	}
	return []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(endpoint),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
	}
}

// Enabled reports whether spans are recorded: instrumentation that costs something even for a
// no-op span (the HTTP middleware, the query hooks) is left out while it is false.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// TracerProvider is what instrumentation libraries take (otelgin, bunotel, redisotel).
func (t *Tracing) TracerProvider() trace.TracerProvider { return t.provider }

// ChildTracerProvider makes spans only as children: a Start whose context holds no span makes
// none. For the Postgres and Redis hooks: the background loops poll both every second or so,
// and each poll would otherwise be a trace of its own; inside a request (or any traced work)
// every query and command is there.
func (t *Tracing) ChildTracerProvider() trace.TracerProvider {
	return childOnlyProvider{provider: t.provider}
}

type childOnlyProvider struct {
	embedded.TracerProvider
	provider trace.TracerProvider
}

func (p childOnlyProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childOnlyTracer{tracer: p.provider.Tracer(name, opts...)}
}

type childOnlyTracer struct {
	embedded.Tracer
	tracer trace.Tracer
}

// Start leaves a context without a span as it is and returns a no-op span (ending it, or asking
// whether it records, is harmless).
func (t childOnlyTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.tracer.Start(ctx, name, opts...)
}

// Tracer is the tracer of the service's own spans.
func (t *Tracing) Tracer() trace.Tracer { return t.provider.Tracer(Scope) }

// Propagator reads and writes W3C trace context (traceparent, tracestate): an incoming request
// continues its caller's trace, an outgoing one carries ours.
func (t *Tracing) Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Shutdown exports the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flushing spans: %w", err)
	}
	return nil
}
