package app_test

import (
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/insien/orchestrator/internal/testenv"
)

// TestRequestLog: one line per request with its id, method, route, status and latency; probes at
// debug level so they stay out of production logs. Tracing is off by default: a caller's
// traceparent starts no trace, and no line carries a trace id.
func TestRequestLog(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Migrate(t, cfg)
	core, logs := observer.New(zapcore.DebugLevel)
	a := testenv.StartApp(t, cfg, fx.Decorate(func() *zap.Logger { return zap.New(core) }))

	tests := []struct {
		path      string
		headers   map[string]string
		wantLevel zapcore.Level
		wantRoute string
		wantCode  int64
	}{
		{"/health", nil, zapcore.DebugLevel, "/health", 200},
		{"/readyz", nil, zapcore.DebugLevel, "/readyz", 200},
		{"/openapi.yaml", map[string]string{"X-Request-ID": "trace-me-42",
			"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, zapcore.InfoLevel, "/openapi.yaml", 200},
		{"/nope", nil, zapcore.InfoLevel, "unmatched", 404},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			id := a.Do(t, "GET", tt.path, "", tt.headers).Header.Get("X-Request-ID")
			// The line is written once the handler returns, which a client that already has the
			// whole body may beat.
			requestLines := func() []observer.LoggedEntry {
				return logs.FilterMessage("request").FilterField(zap.String("request_id", id)).All()
			}
			testenv.Eventually(t, "the request line of "+tt.path, 5*time.Second, func() bool { return len(requestLines()) > 0 })
			lines := requestLines()
			if len(lines) != 1 {
				t.Fatalf("%d request lines for %s, want 1", len(lines), tt.path)
			}
			fields := lines[0].ContextMap()
			if lines[0].Level != tt.wantLevel || fields["method"] != "GET" || fields["route"] != tt.wantRoute ||
				fields["status"] != tt.wantCode || fields["latency"] == nil || fields["trace_id"] != nil || fields["span_id"] != nil {
				t.Errorf("logged %v %v", lines[0].Level, fields)
			}
		})
	}
}
