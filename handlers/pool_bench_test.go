package handlers_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/docker"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// benchPool starts the service with a warm pool of size members of 64 MiB (none when size is 0)
// and a direct Docker driver for the baseline, on the same engine.
func benchPool(b *testing.B, size int) (*identity, sandboxUser, *docker.Runtime) {
	id := startIdentity(b, func(c *config.Config, _ *clerkstub.Server) {
		c.Sandbox.MaxPerUser, c.Sandbox.MaxPerInstance = 1000, 1000
		c.Sandbox.DefaultMemoryMB = 64
		c.Sandbox.WarmPool.Enabled, c.Sandbox.WarmPool.Size = size > 0, size
		c.Sandbox.WarmPool.RefillPerSecond = 50
		c.RateLimit.PrincipalBurst = 100_000
		c.Database.MaxOpenConns, c.Database.MaxIdleConns = 50, 50
	})
	direct, err := docker.New(docker.Options{Host: id.cfg.Runtime.DockerHost}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { direct.Close() })
	return id, newSandboxUser(b, id, "user_bench_pool"), direct
}

// rawCreate creates and starts the same hardened container as a sandbox straight through the
// Engine API: the baseline.
func rawCreate(ctx context.Context, id *identity, direct *docker.Runtime) (string, error) {
	cid, err := direct.Create(ctx, runtimes.Spec{Name: "bench-direct-" + uuid.NewString(), Image: id.cfg.Sandbox.DefaultImage,
		MemoryMB: 64, CPU: 1, PidsLimit: id.cfg.Sandbox.PidsLimit, Labels: map[string]string{
			runtimes.LabelManagedBy: "true", runtimes.LabelCluster: id.cfg.Runtime.Cluster, runtimes.LabelSandboxID: uuid.NewString()}})
	if err == nil {
		err = direct.Start(ctx, cid)
	}
	return cid, err
}

// warmCreate creates a sandbox that the pool must serve and returns its id and latency.
func warmCreate(b *testing.B, u sandboxUser) (string, time.Duration) {
	start := time.Now()
	sb := u.create(b, `{}`)
	took := time.Since(start)
	if sb.Start != "warm" {
		b.Fatalf("a create with a full pool started %s", sb.Start)
	}
	return sb.ID, took
}

// BenchmarkWarmCreate measures POST /api/sandboxes served by a full warm pool, and the same
// followed by an exec (the sandbox is usable at once), against creating and starting the same
// container straight through the Engine API, alternating in one run. The pool is refilled
// between samples (untimed), so every sample claims. Samples: max(b.N, 40).
func BenchmarkWarmCreate(b *testing.B) {
	const size = 4
	id, u, direct := benchPool(b, size)
	ctx := context.Background()
	var warm, usable, raw []time.Duration
	samples := max(b.N, 40)
	b.ResetTimer()
	for range samples {
		untimed(b, func() { waitPoolReady(b, id, size) })
		start := time.Now()
		sbID, took := warmCreate(b, u)
		if got := u.sh(b, sbID, "echo ok"); got != "ok\n" {
			b.Fatalf("exec right after a warm create: %q", got)
		}
		usable = append(usable, time.Since(start))
		warm = append(warm, took)
		untimed(b, func() { waitPoolReady(b, id, size) }) // the baseline runs on an engine as idle as the claim's

		start = time.Now()
		cid, err := rawCreate(ctx, id, direct)
		raw = append(raw, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		untimed(b, func() {
			u.do(b, "DELETE", "/api/sandboxes/"+sbID, "")
			_ = direct.Remove(ctx, cid)
		})
	}
	b.StopTimer()
	reportLatencies(b, warm, raw)
	usableP50, _ := quantiles(usable)
	b.ReportMetric(ms(usableP50), "api_then_exec_p50_ms")
}

// BenchmarkConcurrentCreates sends 20 creates at once, rounds alternating between the two
// services it runs on the same engine: one with a warm pool of 20 (reporting the round's p50
// against a single warm create measured between rounds) and one without a pool (reporting the
// round's p50 against 20 creates of the same containers at once through the Engine API).
func BenchmarkConcurrentCreates(b *testing.B) {
	const n = 20
	pooled, pu, _ := benchPool(b, n)
	cold, cu, direct := benchPool(b, 0)
	ctx := context.Background()
	var single, warm, api, raw []time.Duration
	rounds := max(b.N, 3)
	// One burst first, untimed: it opens the database connections that a running service keeps
	// (database.max_idle_conns), which would otherwise be counted against the first round.
	waitPoolReady(b, pooled, n)
	concurrently(b, n, func() (string, error) { return pu.create(b, `{}`).ID, nil },
		func(sbID string) { pu.do(b, "DELETE", "/api/sandboxes/"+sbID, "") })
	b.ResetTimer()
	for range rounds {
		untimed(b, func() { waitPoolReady(b, pooled, n) })
		for range 3 {
			untimed(b, settle)
			sbID, took := warmCreate(b, pu)
			single = append(single, took)
			untimed(b, func() {
				pu.do(b, "DELETE", "/api/sandboxes/"+sbID, "")
				waitPoolReady(b, pooled, n)
			})
		}
		untimed(b, settle)
		warm = append(warm, concurrently(b, n, func() (string, error) {
			sb := pu.create(b, `{}`)
			if sb.Start != "warm" {
				b.Errorf("a create with a full pool started %s", sb.Start)
			}
			return sb.ID, nil
		}, func(sbID string) { pu.do(b, "DELETE", "/api/sandboxes/"+sbID, "") })...)
		// The pool refills behind the burst: both cold bursts run on an engine without that work.
		untimed(b, func() { waitPoolReady(b, pooled, n) })
		api = append(api, concurrently(b, n, func() (string, error) {
			return cu.create(b, `{}`).ID, nil
		}, func(sbID string) { cu.do(b, "DELETE", "/api/sandboxes/"+sbID, "") })...)
		raw = append(raw, concurrently(b, n, func() (string, error) {
			return rawCreate(ctx, cold, direct)
		}, func(cid string) { _ = direct.Remove(ctx, cid) })...)
	}
	b.StopTimer()
	singleP50, _ := quantiles(single)
	warmP50, warmP95 := quantiles(warm)
	apiP50, _ := quantiles(api)
	rawP50, _ := quantiles(raw)
	b.ReportMetric(ms(singleP50), "warm_single_p50_ms")
	b.ReportMetric(ms(warmP50), "warm_x20_p50_ms")
	b.ReportMetric(ms(warmP95), "warm_x20_p95_ms")
	b.ReportMetric(float64(warmP50)/float64(singleP50), "p50_warm_x20/single")
	b.ReportMetric(ms(apiP50), "cold_x20_p50_ms")
	b.ReportMetric(ms(rawP50), "direct_x20_p50_ms")
	b.ReportMetric(float64(apiP50)/float64(rawP50), "p50_cold_x20_api/direct")
}

// concurrently runs create n times at once and returns each one's latency; cleanup runs after
// all of them, untimed.
func concurrently(b *testing.B, n int, create func() (string, error), cleanup func(string)) []time.Duration {
	latencies := make([]time.Duration, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			id, err := create()
			latencies[i] = time.Since(start)
			if err != nil {
				b.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	untimed(b, func() {
		for _, id := range ids {
			if id != "" {
				cleanup(id)
			}
		}
	})
	return latencies
}

// settle lets the host finish the work that the samples before left behind (the engine and the
// filesystem remove deleted containers in the background, the pool's refill has just started a
// container) before a warm sample, whose few milliseconds it would otherwise share. Single and
// concurrent warm samples both wait for it.
func settle() { time.Sleep(time.Second) }

// untimed runs f with the benchmark's timer stopped.
func untimed(b *testing.B, f func()) {
	b.StopTimer()
	f()
	b.StartTimer()
}
