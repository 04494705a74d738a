package handlers_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/metrics"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// BenchmarkMetricsScrapeOverhead measures what being scraped costs the API: req/s of the hot
// path (API-key GET /api/sandboxes/{id}, 32 clients) in one-second rounds alternating between
// no scraper and a scraper reading GET /metrics every second (from the round's start), in one
// run. It reports both and scraped ÷ quiet as scraped_vs_quiet_ratio (goal: at least 0.95).
// Rounds: max(b.N, 6).
func BenchmarkMetricsScrapeOverhead(b *testing.B) {
	var srv *metrics.Server
	id := startIdentity(b, func(c *config.Config, _ *clerkstub.Server) { unthrottled(c) }, fx.Populate(&srv))
	u := newSandboxUser(b, id, "user_bench_scrape")
	sb := u.create(b, `{"memory_mb":64}`)
	b.Cleanup(func() { u.do(b, "DELETE", "/api/sandboxes/"+sb.ID, "") })

	load := newLoadClient(b, id.URL, hotPathClients)
	get := benchTarget{path: "/api/sandboxes/" + sb.ID, headers: bearer(u.key)}
	load.warm(b, get)
	scrapeURL := "http://" + srv.Addr().String() + "/metrics"

	var served [2]int64 // quiet, scraped
	var spent [2]time.Duration
	b.ResetTimer()
	for round := range max(b.N, 6) {
		scraped := round % 2
		stop := make(chan struct{})
		var scraper sync.WaitGroup
		if scraped == 1 {
			scraper.Go(func() { scrapeEverySecond(b, scrapeURL, stop) })
		}
		start := time.Now()
		served[scraped] += load.sustain(b, time.Second, get)
		spent[scraped] += time.Since(start)
		close(stop)
		scraper.Wait()
	}
	b.StopTimer()
	quiet := float64(served[0]) / spent[0].Seconds()
	withScrape := float64(served[1]) / spent[1].Seconds()
	b.ReportMetric(quiet, "quiet_req/s")
	b.ReportMetric(withScrape, "scraped_req/s")
	b.ReportMetric(withScrape/quiet, "scraped_vs_quiet_ratio")
}

// scrapeEverySecond reads url at once and every second until stop is closed.
func scrapeEverySecond(b *testing.B, url string, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		resp, err := http.Get(url)
		if err != nil {
			b.Error(err)
			return
		}
		resp.Body.Close()
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// sustain sends target from every client for d and returns how many requests were answered.
func (l *loadClient) sustain(b *testing.B, d time.Duration, target benchTarget) int64 {
	var served, failed atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range l.workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := l.send(target); err != nil {
					if failed.Add(1) == 1 {
						b.Errorf("GET %s: %v", target.path, err)
					}
					return
				}
				served.Add(1)
			}
		})
	}
	wg.Wait()
	return served.Load()
}
