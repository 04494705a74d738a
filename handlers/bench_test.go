package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// benchParallelism multiplies GOMAXPROCS into the number of concurrent clients, enough to keep
// the server busy while client and server share the machine.
const benchParallelism = 4

// benchTarget is one kind of request the benchmark sends.
type benchTarget struct {
	path    string
	headers map[string]string
}

// BenchmarkAuthOverhead measures what authenticating an API key costs a request: requests per
// second of GET /test/keyed with a key (checksum, SHA-256, Redis key cache, last-used marker, rate
// limiter, scope check) against GET /health (no authentication, no dependency), over real HTTP on
// loopback with keep-alive connections, in the same process and run.
//
// health and api_key each run alone; auth_vs_health alternates bursts of both so that both see
// the same machine state, and reports api_key req/s ÷ health req/s as auth_vs_health_ratio.
func BenchmarkAuthOverhead(b *testing.B) {
	stub := clerkstub.New(b)
	cfg := testenv.Config(b)
	cfg.Clerk.SecretKey = config.Secret(stub.SecretKey())
	cfg.Clerk.APIURL = stub.URL()
	// Far above what the benchmark can send, so nothing is throttled; the limiter stays enabled
	// because its Redis round trip is part of every authenticated request.
	cfg.RateLimit.PrincipalPerMin, cfg.RateLimit.PrincipalBurst = 100_000_000, 100_000_000
	testenv.Migrate(b, cfg)
	app := testenv.StartApp(b, cfg, probeRoutes())

	stub.SetUser(clerkstub.User{ID: "user_bench", Email: "bench@example.com"})
	token := stub.Token(b, clerkstub.TokenOptions{Subject: "user_bench"})
	resp := app.Do(b, "POST", "/api/keys", `{"name":"bench","scopes":["sandboxes:read"]}`, bearer(token))
	var key createdKey
	if resp.Status != http.StatusCreated || json.Unmarshal([]byte(resp.Body), &key) != nil {
		b.Fatalf("creating the key: %d %s", resp.Status, resp.Body)
	}

	workers := benchParallelism * runtime.GOMAXPROCS(0)
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        workers * 2,
			MaxIdleConnsPerHost: workers * 2,
			IdleConnTimeout:     time.Minute,
		},
	}
	b.Cleanup(client.CloseIdleConnections)
	send := func(target benchTarget) error {
		req, err := http.NewRequest(http.MethodGet, app.URL+target.path, nil)
		if err != nil {
			return err
		}
		for k, v := range target.headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body) // drained, so the connection is reused
		if resp.StatusCode != http.StatusOK {
			return &statusError{resp.StatusCode, string(body)}
		}
		return nil
	}
	health := benchTarget{path: "/health"}
	keyed := benchTarget{path: "/test/keyed", headers: bearer(key.Key)}
	for _, target := range []benchTarget{health, keyed} { // fail fast, and warm the key cache
		if err := send(target); err != nil {
			b.Fatalf("GET %s: %v", target.path, err)
		}
	}

	for _, bench := range []struct {
		name   string
		target benchTarget
	}{{"health", health}, {"api_key", keyed}} {
		b.Run(bench.name, func(b *testing.B) {
			b.SetParallelism(benchParallelism)
			var failed atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := send(bench.target); err != nil && failed.Add(1) == 1 {
						b.Errorf("GET %s: %v", bench.target.path, err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}

	b.Run("auth_vs_health", func(b *testing.B) {
		const burst = 512 // requests per kind per round
		var spent [2]time.Duration
		var failed atomic.Int64
		b.ResetTimer()
		for done := 0; done < b.N; {
			n := min(burst, b.N-done)
			for i, target := range []benchTarget{health, keyed} {
				start := time.Now()
				if err := hammer(workers, n, func() error { return send(target) }); err != nil && failed.Add(1) == 1 {
					b.Errorf("GET %s: %v", target.path, err)
				}
				spent[i] += time.Since(start)
			}
			done += n
		}
		healthRPS := float64(b.N) / spent[0].Seconds()
		keyedRPS := float64(b.N) / spent[1].Seconds()
		b.ReportMetric(healthRPS, "health_req/s")
		b.ReportMetric(keyedRPS, "api_key_req/s")
		b.ReportMetric(keyedRPS/healthRPS, "auth_vs_health_ratio")
	})
}

// hammer sends n requests through workers concurrent clients and returns the first error.
func hammer(workers, n int, send func() error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := send(); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	wg.Wait()
	return first
}

type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return http.StatusText(e.status) + ": " + e.body }
