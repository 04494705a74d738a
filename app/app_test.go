package app_test

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"
	"go.yaml.in/yaml/v3"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
)

// testRoutes adds routes that exist only in tests: a panicking one and a slow one.
func testRoutes(release <-chan struct{}) fx.Option {
	return fx.Invoke(func(e *gin.Engine) {
		e.GET("/test/panic", func(*gin.Context) { panic("boom: secret-internal-detail") })
		e.GET("/test/slow", func(c *gin.Context) {
			<-release
			c.JSON(http.StatusOK, gin.H{"slow": "done"})
		})
	})
}

func startMigrated(t *testing.T, mutate func(*config.Config), extra ...fx.Option) *testenv.App {
	t.Helper()
	cfg := testenv.Config(t)
	if mutate != nil {
		mutate(cfg)
	}
	testenv.Migrate(t, cfg)
	return testenv.StartApp(t, cfg, extra...)
}

func decodeError(t *testing.T, body string) apierror.Detail {
	t.Helper()
	var b apierror.Body
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("body is not the error shape: %v\n%s", err, body)
	}
	if b.Error.Code == "" || b.Error.Message == "" || b.Error.RequestID == "" {
		t.Fatalf("error shape incomplete: %s", body)
	}
	return b.Error
}

func TestProbesAndErrorShapes(t *testing.T) {
	a := startMigrated(t, func(c *config.Config) {
		c.HTTP.MaxBodyBytes = 16
	}, testRoutes(nil))

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		headers    map[string]string
		wantStatus int
		wantCode   string // error code, when an error is expected
		wantBody   string // substring of a success body
	}{
		{name: "health is alive", method: "GET", path: "/health", wantStatus: 200, wantBody: `{"status":"ok"}`},
		{name: "livez is alive", method: "GET", path: "/livez", wantStatus: 200, wantBody: `{"status":"ok"}`},
		{name: "ready when dependencies answer", method: "GET", path: "/ready", wantStatus: 200, wantBody: `"postgres":"ok"`},
		{name: "readyz names redis", method: "GET", path: "/readyz", wantStatus: 200, wantBody: `"redis":"ok"`},
		{name: "openapi served", method: "GET", path: "/openapi.yaml", wantStatus: 200, wantBody: "openapi: 3.1.0"},
		{name: "unknown route", method: "GET", path: "/nope", wantStatus: 404, wantCode: "not_found"},
		{name: "wrong method", method: "DELETE", path: "/health", wantStatus: 405, wantCode: "method_not_allowed"},
		{name: "panic becomes JSON 500", method: "GET", path: "/test/panic", wantStatus: 500, wantCode: "internal"},
		{name: "body over the limit", method: "POST", path: "/health", body: strings.Repeat("x", 64), wantStatus: 413, wantCode: "payload_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := a.Do(t, tt.method, tt.path, tt.body, tt.headers)
			if resp.Status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.Status, tt.wantStatus, resp.Body)
			}
			if tt.wantCode != "" {
				detail := decodeError(t, resp.Body)
				if detail.Code != tt.wantCode {
					t.Errorf("code %q, want %q", detail.Code, tt.wantCode)
				}
				if detail.RequestID != resp.Header.Get("X-Request-ID") {
					t.Errorf("request_id %q differs from header %q", detail.RequestID, resp.Header.Get("X-Request-ID"))
				}
				if strings.Contains(resp.Body, "secret-internal-detail") || strings.Contains(resp.Body, "goroutine") {
					t.Errorf("internals leaked: %s", resp.Body)
				}
			}
			if !strings.Contains(resp.Body, tt.wantBody) {
				t.Errorf("body %s does not contain %s", resp.Body, tt.wantBody)
			}
		})
	}
}

func TestRequestIDIsHonouredOrGenerated(t *testing.T) {
	a := startMigrated(t, nil)
	tests := []struct {
		name     string
		incoming string
		wantSame bool
	}{
		{"honoured", "abc-123", true},
		{"generated when absent", "", false},
		{"replaced when unprintable", "bad id\twith tab", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			headers := map[string]string{}
			if tt.incoming != "" {
				headers["X-Request-ID"] = tt.incoming
			}
			got := a.Do(t, "GET", "/health", "", headers).Header.Get("X-Request-ID")
			if got == "" {
				t.Fatal("no X-Request-ID echoed")
			}
			if (got == tt.incoming) != tt.wantSame {
				t.Errorf("X-Request-ID %q for incoming %q", got, tt.incoming)
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	a := startMigrated(t, nil)
	for _, path := range []string{"/health", "/nope"} {
		resp := a.Do(t, "GET", path, "", nil)
		for header, want := range map[string]string{
			"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
			"X-Content-Type-Options":    "nosniff",
			"X-Frame-Options":           "DENY",
			"Referrer-Policy":           "no-referrer",
			"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
		} {
			if got := resp.Header.Get(header); got != want {
				t.Errorf("%s: %s = %q, want %q", path, header, got, want)
			}
		}
	}
}

func TestCORSPreflight(t *testing.T) {
	a := startMigrated(t, func(c *config.Config) {
		c.HTTP.CORS.AllowedOrigins = []string{"https://app.example.com"}
	})
	tests := []struct {
		origin      string
		wantAllowed bool
	}{
		{"https://app.example.com", true},
		{"https://evil.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			resp := a.Do(t, "OPTIONS", "/health", "", map[string]string{
				"Origin":                         tt.origin,
				"Access-Control-Request-Method":  "POST",
				"Access-Control-Request-Headers": "Authorization, Content-Type",
			})
			allowOrigin := resp.Header.Get("Access-Control-Allow-Origin")
			if tt.wantAllowed {
				if resp.Status != http.StatusNoContent || allowOrigin != tt.origin {
					t.Fatalf("preflight refused: status %d, Allow-Origin %q", resp.Status, allowOrigin)
				}
				if !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
					t.Errorf("Authorization not allowed: %q", resp.Header.Get("Access-Control-Allow-Headers"))
				}
				return
			}
			if resp.Status != http.StatusForbidden || allowOrigin != "" {
				t.Fatalf("preflight from %s: status %d, Allow-Origin %q; want 403 and none", tt.origin, resp.Status, allowOrigin)
			}
		})
	}
}

// TestOpenAPICoversEveryRoute fails when a route is registered but undocumented, or documented but
// not registered.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	var engine *gin.Engine
	startMigrated(t, nil, fx.Populate(&engine))

	raw, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	documented := map[string]bool{}
	operationIDs := map[string]string{}
	for path, ops := range spec.Paths {
		for method, op := range ops {
			if slices.Contains([]string{"get", "post", "put", "patch", "delete", "head", "options"}, method) {
				route := strings.ToUpper(method) + " " + path
				documented[route] = true
				// Generated clients name their methods after operationId, and every operation
				// says how it is authenticated (security: [] when it is public).
				fields, _ := op.(map[string]any)
				id, _ := fields["operationId"].(string)
				if other, taken := operationIDs[id]; id == "" || taken {
					t.Errorf("%s: operationId %q is missing or also %s's", route, id, other)
				}
				operationIDs[id] = route
				if _, ok := fields["security"]; !ok {
					t.Errorf("%s: no security", route)
				}
			}
		}
	}
	param := regexp.MustCompile(`[:*]([A-Za-z_]+)`)
	registered := map[string]bool{}
	for _, r := range engine.Routes() {
		registered[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	var missing, stale []string
	for route := range registered {
		if !documented[route] {
			missing = append(missing, route)
		}
	}
	for route := range documented {
		if !registered[route] {
			stale = append(stale, route)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("routes missing from openapi.yaml: %v", missing)
	}
	if len(stale) > 0 {
		t.Errorf("openapi.yaml names routes that do not exist: %v", stale)
	}
}

// TestShutdownFinishesInFlightRequests: when shutdown begins, readiness fails at once, the drain
// delay passes, and a request already in flight still completes with its normal response.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	release := make(chan struct{})
	cfg := testenv.Config(t)
	cfg.HTTP.DrainDelay = 500 * time.Millisecond
	testenv.Migrate(t, cfg)
	a := testenv.StartApp(t, cfg, testRoutes(release))

	var wg sync.WaitGroup
	var slow testenv.Response
	wg.Add(1)
	go func() {
		defer wg.Done()
		slow = testenv.Do(t, "GET", a.URL+"/test/slow", "", nil)
	}()
	testenv.Eventually(t, "the slow request to be in flight", 15*time.Second, func() bool { return true })
	time.Sleep(100 * time.Millisecond)

	stopped := make(chan struct{})
	go func() {
		a.Stop(t)
		close(stopped)
	}()
	testenv.Eventually(t, "readiness to fail during the drain", 15*time.Second, func() bool {
		return testenv.Do(t, "GET", a.URL+"/ready", "", nil).Status == http.StatusServiceUnavailable
	})
	if got := testenv.Do(t, "GET", a.URL+"/health", "", nil).Status; got != http.StatusOK {
		t.Errorf("liveness during drain = %d, want 200", got)
	}
	close(release)
	wg.Wait()
	if slow.Status != http.StatusOK || !strings.Contains(slow.Body, "done") {
		t.Fatalf("in-flight request got %d %s", slow.Status, slow.Body)
	}
	<-stopped
}
