package handlers_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/metrics"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// scrape reads the metrics listener and parses it as Prometheus does.
func scrape(t *testing.T, srv *metrics.Server) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	return families
}

// sample is the value of the family's metric with exactly these labels (a histogram's count),
// and whether there is one.
func sample(f *dto.MetricFamily, labels map[string]string) (float64, bool) {
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

var uuidLike = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|user_|sk_`)

// TestPrometheusMetrics: the metrics listener serves what an operator graphs and alerts on, named by
// Prometheus's conventions with bounded labels, and the public port does not serve it.
func TestPrometheusMetrics(t *testing.T) {
	var srv *metrics.Server
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.RateLimit.AnonymousPerMin, c.RateLimit.AnonymousBurst = 1, 1
	}, fx.Populate(&srv))
	u := newSandboxUser(t, id, "user_prometheus")

	// Traffic for each metric: a cold create, an exec, a 404, an anonymous caller over its limit.
	sb := u.create(t, `{}`)
	if got := u.sh(t, sb.ID, "echo ok"); got != "ok\n" {
		t.Fatalf("exec: %q", got)
	}
	if resp := u.do(t, "GET", "/no/such/route", ""); resp.Status != http.StatusNotFound {
		t.Fatalf("GET /no/such/route = %d", resp.Status)
	}
	for range 2 {
		id.Do(t, "POST", "/api/webhooks/clerk", `{}`, nil)
	}
	if resp := id.Do(t, "GET", "/metrics", "", nil); resp.Status != http.StatusNotFound {
		t.Errorf("the public port answers GET /metrics with %d, want 404", resp.Status)
	}

	families := scrape(t, srv)
	driver := id.cfg.Runtime.Driver
	if driver == "" {
		driver = "docker"
	}
	tests := []struct {
		name    string
		typ     dto.MetricType
		labels  map[string]string
		atLeast float64
	}{
		{"insien_http_requests_total", dto.MetricType_COUNTER, map[string]string{"route": "/api/sandboxes", "method": "POST", "status": "2xx"}, 1},
		{"insien_http_requests_total", dto.MetricType_COUNTER, map[string]string{"route": "unmatched", "method": "GET", "status": "4xx"}, 1},
		{"insien_http_request_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"route": "/api/sandboxes/:id/exec", "method": "POST", "status": "2xx"}, 1},
		{"insien_sandbox_create_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"start": "cold"}, 1},
		{"insien_sandboxes", dto.MetricType_GAUGE, map[string]string{"state": "running"}, 1},
		{"insien_sandboxes", dto.MetricType_GAUGE, map[string]string{"state": "paused"}, 0},
		{"insien_runtime_call_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"driver": driver, "operation": "create"}, 1},
		{"insien_runtime_call_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"driver": driver, "operation": "start"}, 1},
		{"insien_rate_limit_refusals_total", dto.MetricType_COUNTER, map[string]string{"class": "anonymous", "reason": "limited"}, 1},
		{"insien_rate_limit_refusals_total", dto.MetricType_COUNTER, map[string]string{"class": "principal", "reason": "limited"}, 0},
		{"insien_live_connections", dto.MetricType_GAUGE, map[string]string{}, 0},
		{"insien_webhook_deliveries_total", dto.MetricType_COUNTER, map[string]string{"outcome": "succeeded"}, 0},
		{"insien_webhook_deliveries_total", dto.MetricType_COUNTER, map[string]string{"outcome": "failed"}, 0},
		{"insien_redis_pool_connections", dto.MetricType_GAUGE, map[string]string{"state": "idle"}, 0},
		{"insien_redis_pool_hits_total", dto.MetricType_COUNTER, map[string]string{}, 1},
		{"go_sql_open_connections", dto.MetricType_GAUGE, map[string]string{"db_name": "postgres"}, 1},
		{"go_sql_wait_count_total", dto.MetricType_COUNTER, map[string]string{"db_name": "postgres"}, 0},
		{"go_goroutines", dto.MetricType_GAUGE, map[string]string{}, 1},
		{"process_cpu_seconds_total", dto.MetricType_COUNTER, map[string]string{}, 0},
	}
	for _, tt := range tests {
		f := families[tt.name]
		if f == nil {
			t.Errorf("%s is not exported", tt.name)
			continue
		}
		if f.GetType() != tt.typ {
			t.Errorf("%s is a %s, want a %s", tt.name, f.GetType(), tt.typ)
		}
		if v, ok := sample(f, tt.labels); !ok || v < tt.atLeast {
			t.Errorf("%s%v = %v (present: %v), want at least %v", tt.name, tt.labels, v, ok, tt.atLeast)
		}
	}

	// Conventions: a counter ends in _total, a duration is in seconds, and no label carries an
	// identifier of a user, key or sandbox (an unbounded set).
	for name, f := range families {
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
		if strings.HasPrefix(name, metrics.Namespace+"_") && f.GetType() == dto.MetricType_HISTOGRAM && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("histogram %s is not in seconds", name)
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if uuidLike.MatchString(l.GetValue()) {
					t.Errorf("%s has label %s=%q: an identifier", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestMetricsListenerCanBeTurnedOff: metrics.addr "" serves no metrics anywhere.
func TestMetricsListenerCanBeTurnedOff(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Metrics.Addr = ""
	testenv.Migrate(t, cfg)
	var srv *metrics.Server
	testenv.StartApp(t, cfg, fx.Populate(&srv))
	if srv.Addr() != nil {
		t.Errorf("a metrics listener runs on %s", srv.Addr())
	}
}
