package handlers_test

import (
	"testing"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// hotPathClients is the concurrency the hot-path goal is stated at.
const hotPathClients = 32

// BenchmarkSandboxGetHotPath measures the request programs repeat most: GET /api/sandboxes/{id}
// of a running sandbox with an API key (authentication, rate limit, the tenancy check, the cached
// row, the live-connection count, JSON) against GET /health, from 32 concurrent clients over
// keep-alive connections, alternating bursts of both in one run. It reports each one's req/s and
// get_vs_health_ratio; the goal is a ratio of at least 0.5.
func BenchmarkSandboxGetHotPath(b *testing.B) {
	id := startIdentity(b, func(c *config.Config, _ *clerkstub.Server) { unthrottled(c) })
	u := newSandboxUser(b, id, "user_bench_hot")
	sb := u.create(b, `{"memory_mb":64}`)
	b.Cleanup(func() { u.do(b, "DELETE", "/api/sandboxes/"+sb.ID, "") })

	load := newLoadClient(b, id.URL, hotPathClients)
	health := benchTarget{path: "/health"}
	get := benchTarget{path: "/api/sandboxes/" + sb.ID, headers: bearer(u.key)}
	load.warm(b, health, get)
	load.compare(b, health, get, "health", "sandbox_get", "get_vs_health_ratio")
}
