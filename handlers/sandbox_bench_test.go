package handlers_test

import (
	"context"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/docker"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// percentile returns the p-th quantile (0..1) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[int(p*float64(len(sorted)-1))]
}

// BenchmarkCreateToRunning compares POST /api/sandboxes (authentication, validation, the quota
// transaction, container create and start, the state change) with creating and starting the
// same hardened container straight through the Docker Engine API, alternating the two in one
// run. It reports p50 and p95 of each and the API/direct ratios. Samples: max(b.N, 20).
func BenchmarkCreateToRunning(b *testing.B) {
	id := startIdentity(b, func(c *config.Config, _ *clerkstub.Server) {
		c.Sandbox.MaxPerUser, c.Sandbox.MaxPerInstance = 1000, 1000
	})
	u := newSandboxUser(b, id, "user_bench_create")
	direct, err := docker.New(docker.Options{Host: id.cfg.Runtime.DockerHost}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	ctx := context.Background()
	samples := max(b.N, 20)
	var api, raw []time.Duration
	b.ResetTimer()
	for range samples {
		start := time.Now()
		sb := u.create(b, `{"memory_mb":64}`)
		api = append(api, time.Since(start))

		name := "bench-direct-" + uuid.NewString()
		start = time.Now()
		cid, err := direct.Create(ctx, runtimes.Spec{Name: name, Image: id.cfg.Sandbox.DefaultImage, MemoryMB: 64, CPU: 1,
			PidsLimit: id.cfg.Sandbox.PidsLimit, Labels: map[string]string{
				runtimes.LabelManagedBy: "true", runtimes.LabelCluster: id.cfg.Runtime.Cluster, runtimes.LabelSandboxID: uuid.NewString()}})
		if err == nil {
			err = direct.Start(ctx, cid)
		}
		raw = append(raw, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		u.do(b, "DELETE", "/api/sandboxes/"+sb.ID, "")
		_ = direct.Remove(ctx, cid)
		b.StartTimer()
	}
	b.StopTimer()
	reportLatencies(b, api, raw)
}

// reportLatencies reports p50 and p95 of the API and of the direct baseline, and their ratios.
func reportLatencies(b *testing.B, api, direct []time.Duration) {
	apiP50, apiP95 := quantiles(api)
	directP50, directP95 := quantiles(direct)
	b.ReportMetric(ms(apiP50), "api_p50_ms")
	b.ReportMetric(ms(apiP95), "api_p95_ms")
	b.ReportMetric(ms(directP50), "direct_p50_ms")
	b.ReportMetric(ms(directP95), "direct_p95_ms")
	b.ReportMetric(float64(apiP50)/float64(directP50), "p50_api/direct")
	b.ReportMetric(float64(apiP95)/float64(directP95), "p95_api/direct")
}

// quantiles sorts samples and returns their p50 and p95.
func quantiles(samples []time.Duration) (p50, p95 time.Duration) {
	slices.Sort(samples)
	return percentile(samples, 0.5), percentile(samples, 0.95)
}

// ms is d in milliseconds, as benchmarks report it.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkCapacity creates 32 MiB sandboxes until a create fails or the cap is reached
// (ORCH_BENCH_CAPACITY, default 150), then reports how many ran at once and the service's
// memory at that point (the benchmark process hosts the service: Go heap in use and total
// memory obtained from the OS).
func BenchmarkCapacity(b *testing.B) {
	limit := 150
	if v, err := strconv.Atoi(os.Getenv("ORCH_BENCH_CAPACITY")); err == nil && v > 0 {
		limit = v
	}
	for range b.N {
		id := startIdentity(b, func(c *config.Config, _ *clerkstub.Server) {
			c.Sandbox.MaxPerUser, c.Sandbox.MaxPerInstance = limit, limit
		})
		u := newSandboxUser(b, id, "user_bench_capacity")
		running := 0
		for running < limit {
			resp := u.do(b, "POST", "/api/sandboxes", `{"memory_mb":32,"cpu":0.1}`)
			if resp.Status != http.StatusCreated {
				b.Logf("create #%d failed: %d %s", running+1, resp.Status, resp.Body)
				break
			}
			running++
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(running), "sandboxes")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap_MiB")
		b.ReportMetric(float64(ms.Sys)/(1<<20), "sys_MiB")
	}
}
