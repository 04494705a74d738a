package handlers_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// TestCachedSandboxGetRoundTrips: the first GET of a new sandbox reads Postgres and caches the row
// in Redis; a GET within sandbox.view_local_ttl is answered from memory (no query, no round
// trip); after it, one Redis round trip (the copy and the live connections together) and no query.
func TestCachedSandboxGetRoundTrips(t *testing.T) {
	const localTTL = time.Second // the GETs meant to fall within it come well inside it, even on a loaded machine
	sent := new(atomic.Int64)
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		quietLoops(c)
		c.RateLimit.Enabled = false // its background reconciliation would count here
		c.Sandbox.ViewLocalTTL = localTTL
	}, fx.Invoke(func(rdb *redis.Client) { rdb.AddHook(roundTrips{n: sent, pipelines: true}) }))
	u := newSandboxUser(t, id, "user_hot_get")
	sb := u.create(t, `{"memory_mb":64}`)
	t.Cleanup(func() { u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, "") })

	u.get(t, sb.ID)
	settled(t, id.queries, sent)
	for _, tc := range []struct {
		name       string
		after      time.Duration
		roundTrips int64
	}{
		{"after the service settled", localTTL, 1},
		{"within the local lifetime", 0, 0},
		{"again within it", 0, 0},
		{"once it lapsed", localTTL + 100*time.Millisecond, 1},
		{"within the new local lifetime", 0, 0},
	} {
		time.Sleep(tc.after)
		queries, trips := id.queries.Load(), sent.Load()
		if resp := u.do(t, "GET", "/api/sandboxes/"+sb.ID, ""); resp.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", tc.name, resp.Status, resp.Body)
		}
		if n := id.queries.Load() - queries; n != 0 {
			t.Errorf("GET %s ran %d queries, want none", tc.name, n)
		}
		if n := sent.Load() - trips; n != tc.roundTrips {
			t.Errorf("GET %s made %d Redis round trips, want %d", tc.name, n, tc.roundTrips)
		}
	}
}

// TestSandboxViewFollowsChangesOnEveryReplica: a replica that holds a sandbox's view in memory
// shows a change made through another replica at once (the change is announced to every
// replica), not after its local lifetime.
func TestSandboxViewFollowsChangesOnEveryReplica(t *testing.T) {
	a := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Sandbox.ViewLocalTTL = 10 * time.Second // long enough that only the announcement can explain a fresh view
	})
	b := startIdentityWith(t, a.cfg, a.clerk, a.secret)
	u := newSandboxUser(t, a, "user_view_replicas")
	sb := u.create(t, `{"memory_mb":64,"timeout_seconds":300}`)
	t.Cleanup(func() { u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, "") })
	viewOnA := func() sandbox {
		var got sandbox
		mustJSON(t, a.Do(t, "GET", "/api/sandboxes/"+sb.ID, "", bearer(u.key)).Body, &got)
		return got
	}
	before := viewOnA().ExpiresAt

	if resp := b.Do(t, "POST", "/api/sandboxes/"+sb.ID+"/timeout", `{"timeout_seconds":3600}`, bearer(u.key)); resp.Status != http.StatusOK {
		t.Fatalf("POST timeout through the other replica: %d %s", resp.Status, resp.Body)
	}
	eventually(t, "replica A to show the new expiry", time.Second, func() bool {
		return viewOnA().ExpiresAt.Sub(before) > 50*time.Minute
	})

	if resp := b.Do(t, "DELETE", "/api/sandboxes/"+sb.ID, "", bearer(u.key)); resp.Status != http.StatusNoContent {
		t.Fatalf("DELETE through the other replica: %d %s", resp.Status, resp.Body)
	}
	eventually(t, "replica A to show the sandbox ended", time.Second, func() bool {
		s := viewOnA().Status
		return s == "stopped" || s == "stopping"
	})
}
