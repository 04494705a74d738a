package handlers_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// TestCachedSandboxGetMakesOneRoundTrip: the first GET of a new sandbox reads Postgres and caches
// the row at once (creating it changed it, and still the next reader may cache); every later GET
// is one Redis round trip (the copy and the live connections together) and no query.
func TestCachedSandboxGetMakesOneRoundTrip(t *testing.T) {
	sent := new(atomic.Int64)
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		quietLoops(c)
		c.RateLimit.Enabled = false // its background reconciliation would count here
	}, fx.Invoke(func(rdb *redis.Client) { rdb.AddHook(roundTrips{n: sent, pipelines: true}) }))
	u := newSandboxUser(t, id, "user_hot_get")
	sb := u.create(t, `{"memory_mb":64}`)
	t.Cleanup(func() { u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, "") })

	u.get(t, sb.ID)
	settled(t, id.queries, sent)
	for i := range 3 {
		queries, trips := id.queries.Load(), sent.Load()
		if resp := u.do(t, "GET", "/api/sandboxes/"+sb.ID, ""); resp.Status != http.StatusOK {
			t.Fatalf("GET %d: %d %s", i+2, resp.Status, resp.Body)
		}
		if n := id.queries.Load() - queries; n != 0 {
			t.Errorf("GET %d ran %d queries, want none", i+2, n)
		}
		if n := sent.Load() - trips; n != 1 {
			t.Errorf("GET %d made %d Redis round trips, want 1", i+2, n)
		}
	}
}
