package tracing_test

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/tracing"
)

// collector is an in-process OTLP/HTTP receiver: it keeps the path and the spans of every export.
type collector struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
	spans map[string]string // span name -> service.name of its resource
}

func newCollector(t *testing.T) *collector {
	c := &collector{spans: map[string]string{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		var req collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(raw, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.paths = append(c.paths, r.URL.Path)
		for _, rs := range req.GetResourceSpans() {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					c.spans[s.GetName()] = service
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *collector) received() ([]string, map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	spans := map[string]string{}
	for k, v := range c.spans {
		spans[k] = v
	}
	return append([]string(nil), c.paths...), spans
}

// TestExportsOverOTLPHTTP: spans reach the collector at tracing.endpoint (a base URL gets the
// standard /v1/traces, a URL with a path keeps it) under the configured service name, at the
// latest when the provider shuts down.
func TestExportsOverOTLPHTTP(t *testing.T) {
	for _, tt := range []struct{ name, suffix, wantPath string }{
		{"base URL", "", "/v1/traces"},
		{"base URL with a slash", "/", "/v1/traces"},
		{"URL with a path", "/otlp/v1/traces", "/otlp/v1/traces"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCollector(t)
			cfg := config.Default().Tracing
			cfg.Endpoint, cfg.ServiceName = c.URL+tt.suffix, "orchestrator-under-test"
			tr, err := tracing.New(cfg, "replica-1")
			if err != nil {
				t.Fatal(err)
			}
			if !tr.Enabled() {
				t.Fatal("an endpoint is set, yet tracing is off")
			}
			_, span := tr.Tracer().Start(context.Background(), "unit-of-work")
			span.End()
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			paths, spans := c.received()
			if len(paths) == 0 || paths[0] != tt.wantPath {
				t.Errorf("exports went to %v, want %s", paths, tt.wantPath)
			}
			if spans["unit-of-work"] != "orchestrator-under-test" {
				t.Errorf("collector received %v, want unit-of-work from orchestrator-under-test", spans)
			}
		})
	}
}

// TestOffByDefault: with the default configuration there is no exporter (not even one the
// standard OTEL_EXPORTER_OTLP_ENDPOINT would point somewhere) and spans record nothing.
func TestOffByDefault(t *testing.T) {
	c := newCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", c.URL)
	tr, err := tracing.New(config.Default().Tracing, "replica-1")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() {
		t.Fatal("tracing is on by default")
	}
	_, span := tr.Tracer().Start(context.Background(), "unit-of-work")
	if span.IsRecording() {
		t.Error("a span records while tracing is off")
	}
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if paths, _ := c.received(); len(paths) != 0 {
		t.Errorf("exports reached %v while tracing is off", paths)
	}
}

// TestSampling: sample_ratio decides new traces; a caller's sampled flag decides its own.
func TestSampling(t *testing.T) {
	c := newCollector(t)
	cfg := config.Default().Tracing
	cfg.Endpoint, cfg.SampleRatio = c.URL, 0
	tr, err := tracing.New(cfg, "replica-1")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Shutdown(context.Background()) }()

	_, root := tr.Tracer().Start(context.Background(), "new-trace")
	if root.IsRecording() {
		t.Error("sample_ratio 0 recorded a new trace")
	}
	root.End()
	for _, sampled := range []bool{true, false} {
		var flags trace.TraceFlags
		if sampled {
			flags = trace.FlagsSampled
		}
		caller := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: flags, Remote: true})
		_, span := tr.Tracer().Start(trace.ContextWithRemoteSpanContext(context.Background(), caller), "continued")
		if span.IsRecording() != sampled {
			t.Errorf("caller sampled=%v: span recording=%v, want the caller's decision", sampled, span.IsRecording())
		}
		span.End()
	}
}

// TestChildTracerProvider: the clients' provider makes spans inside a trace and none outside.
func TestChildTracerProvider(t *testing.T) {
	c := newCollector(t)
	cfg := config.Default().Tracing
	cfg.Endpoint = c.URL
	tr, err := tracing.New(cfg, "replica-1")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Shutdown(context.Background()) }()
	clients := tr.ChildTracerProvider().Tracer("client")

	ctx := context.Background()
	if got, span := clients.Start(ctx, "poll"); span.IsRecording() || got != ctx {
		t.Error("a span without a parent was made")
	}
	parentCtx, parent := tr.Tracer().Start(ctx, "request")
	defer parent.End()
	_, child := clients.Start(parentCtx, "query")
	if !child.IsRecording() || child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Error("no child span inside a trace")
	}
	child.End()
}
