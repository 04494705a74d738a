package handlers_test

import (
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/platform/config"
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

// unthrottled lifts the principal rate limit far above what a benchmark can send. The limiter
// stays enabled: its bucket is part of every authenticated request.
func unthrottled(c *config.Config) {
	c.RateLimit.PrincipalPerMin, c.RateLimit.PrincipalBurst = 100_000_000, 100_000_000
}

// loadClient sends GET requests to one server from a fixed number of concurrent clients over
// keep-alive connections, as a load generator on the same machine would.
type loadClient struct {
	base    string
	workers int
	client  *http.Client
}

func newLoadClient(b *testing.B, base string, workers int) *loadClient {
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        workers * 2,
			MaxIdleConnsPerHost: workers * 2,
			IdleConnTimeout:     time.Minute,
		},
	}
	b.Cleanup(client.CloseIdleConnections)
	return &loadClient{base: base, workers: workers, client: client}
}

// send makes one request and fails unless it is answered 200.
func (l *loadClient) send(target benchTarget) error {
	req, err := http.NewRequest(http.MethodGet, l.base+target.path, nil)
	if err != nil {
		return err
	}
	for k, v := range target.headers {
		req.Header.Set(k, v)
	}
	resp, err := l.client.Do(req)
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

// warm sends each target once: the run fails fast on a broken target, and caches fill.
func (l *loadClient) warm(b *testing.B, targets ...benchTarget) {
	b.Helper()
	for _, target := range targets {
		if err := l.send(target); err != nil {
			b.Fatalf("GET %s: %v", target.path, err)
		}
	}
}

// compare sends b.N requests of each target in alternating bursts from every client at once, so
// that both see the same machine state, and reports each one's req/s as "<name>_req/s" and
// target req/s ÷ baseline req/s as ratioName.
func (l *loadClient) compare(b *testing.B, baseline, target benchTarget, baselineName, targetName, ratioName string) {
	const burst = 512 // requests per kind per round
	var spent [2]time.Duration
	var failed atomic.Int64
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(burst, b.N-done)
		for i, t := range []benchTarget{baseline, target} {
			start := time.Now()
			if err := hammer(l.workers, n, func() error { return l.send(t) }); err != nil && failed.Add(1) == 1 {
				b.Errorf("GET %s: %v", t.path, err)
			}
			spent[i] += time.Since(start)
		}
		done += n
	}
	b.StopTimer()
	baselineRPS := float64(b.N) / spent[0].Seconds()
	targetRPS := float64(b.N) / spent[1].Seconds()
	b.ReportMetric(baselineRPS, baselineName+"_req/s")
	b.ReportMetric(targetRPS, targetName+"_req/s")
	b.ReportMetric(targetRPS/baselineRPS, ratioName)
}

// BenchmarkAuthOverhead measures what authenticating an API key costs a request: requests per
// second of GET /test/keyed with a key (checksum, SHA-256, the in-process key cache, the rate
// limiter's local copy of the bucket, the scope check; no network round trip once the key and
// the bucket are warm) against GET /health (no authentication, no dependency), over real HTTP on
// loopback with keep-alive connections, in the same process and run.
//
// health and api_key each run alone; auth_vs_health alternates bursts of both so that both see
// the same machine state, and reports api_key req/s ÷ health req/s as auth_vs_health_ratio.
func BenchmarkAuthOverhead(b *testing.B) {
	id := startIdentity(b, func(c *config.Config, _ *clerkstub.Server) { unthrottled(c) })
	key := id.createKey(b, id.session(b, "user_bench"), `{"name":"bench","scopes":["sandboxes:read"]}`)

	load := newLoadClient(b, id.URL, benchParallelism*runtime.GOMAXPROCS(0))
	health := benchTarget{path: "/health"}
	keyed := benchTarget{path: "/test/keyed", headers: bearer(key.Key)}
	load.warm(b, health, keyed)

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
					if err := load.send(bench.target); err != nil && failed.Add(1) == 1 {
						b.Errorf("GET %s: %v", bench.target.path, err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}

	b.Run("auth_vs_health", func(b *testing.B) {
		load.compare(b, health, keyed, "health", "api_key", "auth_vs_health_ratio")
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
