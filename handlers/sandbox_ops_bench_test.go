package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/docker"
)

// BenchmarkExecRoundTrip compares POST /api/sandboxes/{id}/exec of `echo hi` (authentication,
// the tenancy and state check, activity, the live-connection registration, the exec, JSON) with
// the same exec straight through the Docker driver, alternating the two in one run. It reports
// p50 and p95 of each and the API/direct ratios. Samples: max(b.N, 30).
func BenchmarkExecRoundTrip(b *testing.B) {
	id := startIdentity(b, nil)
	u := newSandboxUser(b, id, "user_bench_exec")
	sb := u.create(b, `{"memory_mb":64}`)
	direct, err := docker.New(docker.Options{Host: id.cfg.Runtime.DockerHost}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	ctx := context.Background()
	spec := runtimes.ExecSpec{Cmd: []string{"echo", "hi"}}
	samples := max(b.N, 30)
	var api, raw []time.Duration
	b.ResetTimer()
	for range samples {
		start := time.Now()
		res := u.exec(b, sb.ID, map[string]any{"cmd": []string{"echo", "hi"}})
		api = append(api, time.Since(start))
		if res.Stdout != "hi\n" {
			b.Fatalf("api: %+v", res)
		}

		var out bytes.Buffer
		start = time.Now()
		_, err := direct.Exec(ctx, "sbx-"+sb.ID, spec, &out, io.Discard, time.Minute, 1<<20)
		raw = append(raw, time.Since(start))
		if err != nil || out.String() != "hi\n" {
			b.Fatalf("direct: %v %q", err, out.String())
		}
	}
	b.StopTimer()
	reportLatencies(b, api, raw)
}

// BenchmarkFileTransfer uploads and downloads a 10 MiB file through the API and reports the
// throughput of each (MB/s, 10^6 bytes per second), checking the round trip is byte-exact.
func BenchmarkFileTransfer(b *testing.B) {
	const size = 10 << 20
	id := startIdentity(b, nil) // uploads are bounded by sandbox.max_upload_bytes (100 MiB), not http.max_body_bytes
	u := newSandboxUser(b, id, "user_bench_files")
	sb := u.create(b, `{"memory_mb":256}`)
	content := make([]byte, size)
	_, _ = rand.Read(content)
	var up, down time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, body := u.request(b, "PUT", filesURL(sb.ID, "/tmp/bench.bin"), bytes.NewReader(content), nil)
		up += time.Since(start)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("upload: %d %s", resp.StatusCode, body)
		}
		start = time.Now()
		resp, body = u.request(b, "GET", filesURL(sb.ID, "/tmp/bench.bin"), nil, nil)
		down += time.Since(start)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
			b.Fatalf("download: %d, %d bytes", resp.StatusCode, len(body))
		}
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(up), "upload_MB/s")
	b.ReportMetric(mbps(down), "download_MB/s")
}
