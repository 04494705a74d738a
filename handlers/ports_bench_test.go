package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes/docker"
)

// BenchmarkPortProxy measures an app inside a sandbox reached through the API
// (/api/sandboxes/{id}/ports/8080/...) against the same request sent straight to the app from
// inside the sandbox's network namespace (the Docker driver's DialPort, which is all the proxy
// adds to the network path), both over kept-alive connections, alternating: a small page (p50
// and p95 of each, 200 samples) and a 100 MiB download (MB/s of each, 3 samples).
func BenchmarkPortProxy(b *testing.B) {
	id := startIdentity(b, nil)
	u := newSandboxUser(b, id, "user_bench_ports")
	body, _ := json.Marshal(map[string]any{"memory_mb": 512, "command": []string{"sh", "-c",
		"mkdir -p /tmp/www && echo hello > /tmp/www/index.html && dd if=/dev/zero of=/tmp/www/big bs=1M count=100 2>/dev/null && exec httpd -f -p 8080 -h /tmp/www"}})
	sb := u.create(b, string(body))
	b.Cleanup(func() { u.do(b, "DELETE", "/api/sandboxes/"+sb.ID, "") })
	eventually(b, "the app to serve its big file", 30*time.Second, func() bool {
		resp := u.do(b, "GET", "/api/sandboxes/"+sb.ID+"/ports/8080/big", "")
		return resp.Status == http.StatusOK && len(resp.Body) == 100<<20
	})
	container := "sbx-" + sb.ID // a cold sandbox's container is named after it
	drv, err := docker.New(docker.Options{Host: id.cfg.Runtime.DockerHost}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { drv.Close() })
	direct := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return drv.DialPort(ctx, container, 8080)
	}}}
	api := &http.Client{}
	get := func(client *http.Client, url string, auth bool) (time.Duration, int64) {
		req, _ := http.NewRequest("GET", url, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+u.key)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
		}
		return time.Since(start), n
	}
	proxied := id.URL + "/api/sandboxes/" + sb.ID + "/ports/8080"
	inside := "http://localhost:8080"

	var viaAPI, straight []time.Duration
	samples := max(b.N, 200)
	b.ResetTimer()
	for range samples {
		d, _ := get(api, proxied+"/", true)
		viaAPI = append(viaAPI, d)
		d, _ = get(direct, inside+"/", false)
		straight = append(straight, d)
	}
	var apiBytes, directBytes int64
	var apiTime, directTime time.Duration
	for range 3 {
		d, n := get(api, proxied+"/big", true)
		apiTime, apiBytes = apiTime+d, apiBytes+n
		d, n = get(direct, inside+"/big", false)
		directTime, directBytes = directTime+d, directBytes+n
	}
	b.StopTimer()
	reportLatencies(b, viaAPI, straight)
	apiRate := float64(apiBytes) / apiTime.Seconds() / 1e6
	directRate := float64(directBytes) / directTime.Seconds() / 1e6
	b.ReportMetric(apiRate, "api_MB/s")
	b.ReportMetric(directRate, "direct_MB/s")
	b.ReportMetric(apiRate/directRate, "download_api/direct")
}
