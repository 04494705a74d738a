package handlers_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/tracing"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// TestTracing: one create through HTTP, carrying a caller's traceparent, makes a server span that
// continues the caller's trace, with the create's Postgres queries, Redis commands and runtime
// calls beneath it; the request's log line carries the trace id.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(config.Tracing{SampleRatio: 1, ServiceName: "insien-test"}, "test", tracing.WithSyncExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Sandbox.WarmPool.Enabled = false // a cold create: the runtime creates and starts a workload
	}, fx.Replace(tr), fx.Decorate(func() *zap.Logger { return zap.New(core) }))
	u := newSandboxUser(t, id, "user_tracing")

	const (
		callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerSpan  = "00f067aa0ba902b7"
	)
	headers := bearer(u.key)
	headers["traceparent"] = "00-" + callerTrace + "-" + callerSpan + "-01"
	resp := id.Do(t, "POST", "/api/sandboxes", `{}`, headers)
	if resp.Status != http.StatusCreated {
		t.Fatalf("POST /api/sandboxes = %d %s", resp.Status, resp.Body)
	}

	server := serverSpan(t, exp, "POST /api/sandboxes")
	if got := server.SpanContext.TraceID().String(); got != callerTrace {
		t.Errorf("server span in trace %s, want the caller's %s", got, callerTrace)
	}
	if !server.Parent.IsRemote() || server.Parent.SpanID().String() != callerSpan {
		t.Errorf("server span's parent = %v, want the caller's remote span %s", server.Parent.SpanID(), callerSpan)
	}
	if got, _ := server.Resource.Set().Value("service.name"); got.AsString() != "insien-test" {
		t.Errorf("service.name = %q, want insien-test", got.AsString())
	}

	// Everything the create did is in the caller's trace, beneath the server span.
	spans := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == server.SpanContext.TraceID() {
			spans[s.SpanContext.SpanID()] = s
		}
	}
	under := func(s tracetest.SpanStub) bool {
		for {
			if s.Parent.SpanID() == server.SpanContext.SpanID() {
				return true
			}
			parent, ok := spans[s.Parent.SpanID()]
			if !ok {
				return false
			}
			s = parent
		}
	}
	var names, scopes []string
	for _, s := range spans {
		if under(s) {
			names = append(names, s.Name)
			scopes = append(scopes, s.InstrumentationScope.Name)
		}
	}
	for _, want := range []string{"runtime.create", "runtime.start"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s span beneath the server span; beneath it: %v", want, names)
		}
	}
	for _, want := range []string{"github.com/uptrace/bun", "github.com/redis/go-redis/extra/redisotel"} {
		if !slices.Contains(scopes, want) {
			t.Errorf("no span of %s beneath the server span; scopes beneath it: %v", want, scopes)
		}
	}
	for _, s := range spans {
		if s.Name == "runtime.create" && !slices.ContainsFunc(s.Attributes, func(a attribute.KeyValue) bool {
			return string(a.Key) == "runtime.driver" && a.Value.AsString() != ""
		}) {
			t.Errorf("runtime.create carries no runtime.driver: %v", s.Attributes)
		}
	}

	// Background work (the reaper's polls, the pool's refills) makes no Postgres or Redis span of
	// its own: those are only ever children, so a poll every second is not a trace every second.
	for _, s := range exp.GetSpans() {
		if scope := s.InstrumentationScope.Name; !s.Parent.IsValid() && (scope == "github.com/uptrace/bun" || scope == "github.com/redis/go-redis/extra/redisotel") {
			t.Errorf("a %s span %q is a trace of its own", scope, s.Name)
		}
	}

	// A client's mistake is answered, not a failed span; the span still says 404.
	if resp := u.do(t, "GET", "/api/sandboxes/00000000-0000-4000-8000-000000000000", ""); resp.Status != http.StatusNotFound {
		t.Fatalf("GET of an unknown sandbox = %d %s", resp.Status, resp.Body)
	}
	notFound := serverSpan(t, exp, "GET /api/sandboxes/:id")
	if notFound.Status.Code == codes.Error || !slices.Contains(notFound.Attributes, attribute.Int("http.response.status_code", http.StatusNotFound)) {
		t.Errorf("the 404's span: status %v %q, attributes %v", notFound.Status.Code, notFound.Status.Description, notFound.Attributes)
	}

	// The request's log line names the trace and the server span.
	requestID := resp.Header.Get("X-Request-ID")
	lines := logs.FilterMessage("request").FilterField(zap.String("request_id", requestID)).All()
	if len(lines) != 1 {
		t.Fatalf("%d request lines, want 1", len(lines))
	}
	fields := lines[0].ContextMap()
	if fields["trace_id"] != callerTrace || fields["span_id"] != server.SpanContext.SpanID().String() {
		t.Errorf("request line trace_id=%v span_id=%v, want %s and %s", fields["trace_id"], fields["span_id"],
			callerTrace, server.SpanContext.SpanID())
	}
}

// serverSpan waits for the server span called name: it ends once the handler returns, which the
// client may beat.
func serverSpan(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	var found tracetest.SpanStub
	testenv.Eventually(t, "the server span "+name, 5*time.Second, func() bool {
		for _, s := range exp.GetSpans() {
			if s.SpanKind == trace.SpanKindServer && s.Name == name {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// TestWebhookDeliverySpan: each webhook delivery attempt is a span of its own (a client span with
// the event type, the attempt and the receiver's status).
func TestWebhookDeliverySpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(config.Tracing{SampleRatio: 1, ServiceName: "insien-test"}, "test", tracing.WithSyncExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { webhookConfig(c) }, fx.Replace(tr))
	u := newSandboxUser(t, id, "user_tracing_webhooks")
	rc := newReceiver(t, nil)
	u.webhookTo(t, rc, "sandbox.created")
	u.create(t, `{}`)
	var delivery tracetest.SpanStub
	eventually(t, "a webhook.deliver span", 20*time.Second, func() bool {
		for _, s := range exp.GetSpans() {
			if s.Name == "webhook.deliver" {
				delivery = s
				return true
			}
		}
		return false
	})
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range delivery.Attributes {
		attrs[kv.Key] = kv.Value
	}
	if delivery.SpanKind != trace.SpanKindClient || attrs["webhook.event_type"].AsString() != "sandbox.created" ||
		attrs["webhook.attempt"].AsInt64() != 1 || attrs["http.response.status_code"].AsInt64() != http.StatusOK || delivery.Status.Code == codes.Error {
		t.Errorf("webhook.deliver span = kind %v, attributes %v, status %v", delivery.SpanKind, attrs, delivery.Status)
	}
}
