package handlers_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// roundTrips counts the Redis round trips of a client: each command sent alone, and each
// pipeline when pipelines is set (the rate limiter reconciles its buckets in background
// pipelines, off the requests' path).
type roundTrips struct {
	n         *atomic.Int64
	pipelines bool
}

func (h roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "hello" { // a new connection's handshake, whoever dialled it
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.pipelines {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// quietLoops keeps the sandbox reaper and reconciler and the webhook outbox from querying while a
// test counts queries.
func quietLoops(c *config.Config) {
	c.Sandbox.ReapInterval, c.Sandbox.ReconcileInterval = time.Hour, time.Hour
	c.Webhooks.PollInterval = time.Minute // the outbox's poll is a query
}

// settled waits until the service has sent no query and no Redis command for a while: the work
// of its start (the reconciliation after the runtime's event stream connects, first bucket reads)
// is over, so that what a test counts next is its own requests' doing.
func settled(t testing.TB, counters ...*atomic.Int64) {
	t.Helper()
	total := func() (n int64) {
		for _, c := range counters {
			n += c.Load()
		}
		return n
	}
	last, quietSince := total(), time.Now()
	testenv.Eventually(t, "the service to fall quiet", 20*time.Second, func() bool {
		if now := total(); now != last {
			last, quietSince = now, time.Now()
		}
		return time.Since(quietSince) >= 500*time.Millisecond
	})
}

// TestRepeatedKeyRequestMakesNoRoundTrip: once a key has been verified and its rate-limit bucket
// read, further requests reach neither Postgres nor Redis to authenticate and rate-limit.
func TestRepeatedKeyRequestMakesNoRoundTrip(t *testing.T) {
	for _, limiter := range []bool{true, false} {
		name := map[bool]string{true: "rate limiter on", false: "rate limiter off"}[limiter]
		t.Run(name, func(t *testing.T) {
			sent := new(atomic.Int64)
			id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
				quietLoops(c)
				c.RateLimit.Enabled = limiter
			}, fx.Invoke(func(rdb *redis.Client) { rdb.AddHook(roundTrips{n: sent}) }))
			k := id.createKey(t, id.session(t, "user_hot"), `{"name":"hot"}`)
			if resp := id.Do(t, "GET", "/test/keyed", "", bearer(k.Key)); resp.Status != http.StatusOK {
				t.Fatalf("first request: %d %s", resp.Status, resp.Body)
			}
			settled(t, id.queries, sent)
			queries, commands := id.queries.Load(), sent.Load()
			for i := range 20 {
				if resp := id.Do(t, "GET", "/test/keyed", "", bearer(k.Key)); resp.Status != http.StatusOK {
					t.Fatalf("request %d: %d %s", i+2, resp.Status, resp.Body)
				}
			}
			if n := id.queries.Load() - queries; n != 0 {
				t.Errorf("20 repeated requests ran %d queries, want none", n)
			}
			if n := sent.Load() - commands; n != 0 {
				t.Errorf("20 repeated requests waited for %d Redis round trips, want none", n)
			}
		})
	}
}

// TestRevocationReachesEveryReplica: a key both replicas hold in memory is refused by the one
// that revoked it at once, and by the other within a second when the revocation is announced,
// or within auth.key_local_ttl when nothing announced it (revoked straight in Postgres, as a
// replica that lost Redis does).
func TestRevocationReachesEveryReplica(t *testing.T) {
	const localTTL = 2 * time.Second
	a := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Auth.KeyLocalTTL = localTTL })
	b := startIdentityWith(t, a.cfg, a.clerk, a.secret)
	token := a.session(t, "user_revoke")
	db := testenv.OpenSQL(t, a.cfg.Database.URL.Reveal())

	tests := []struct {
		name   string
		revoke func(t *testing.T, k createdKey)
		within time.Duration // for replica B
		onA    bool          // replica A refuses at once
	}{
		{"through the API", func(t *testing.T, k createdKey) {
			if resp := a.Do(t, "DELETE", "/api/keys/"+k.ID, "", bearer(token)); resp.Status != http.StatusNoContent {
				t.Fatalf("revoke: %d %s", resp.Status, resp.Body)
			}
		}, time.Second, true},
		{"in Postgres only, never announced", func(t *testing.T, k createdKey) {
			if _, err := db.ExecContext(t.Context(), "UPDATE api_keys SET revoked_at = now() WHERE id = $1", k.ID); err != nil {
				t.Fatal(err)
			}
		}, localTTL + time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := a.createKey(t, token, `{"name":"`+tt.name+`"}`)
			for _, replica := range []*identity{a, b} {
				if resp := replica.Do(t, "GET", "/test/keyed", "", bearer(k.Key)); resp.Status != http.StatusOK {
					t.Fatalf("before revocation: %d %s", resp.Status, resp.Body)
				}
			}
			tt.revoke(t, k)
			if tt.onA {
				if resp := a.Do(t, "GET", "/test/keyed", "", bearer(k.Key)); resp.Status != http.StatusUnauthorized || errorCode(t, resp) != "api_key_revoked" {
					t.Fatalf("replica A after revoking: %d %s", resp.Status, resp.Body)
				}
			}
			refused(t, b, k.Key, tt.within)
		})
	}
}

// refused waits up to within for replica to refuse key as revoked.
func refused(t *testing.T, replica *identity, key string, within time.Duration) {
	t.Helper()
	eventually(t, "the replica to refuse the revoked key", within, func() bool {
		resp := replica.Do(t, "GET", "/test/keyed", "", bearer(key))
		return resp.Status == http.StatusUnauthorized && errorCode(t, resp) == "api_key_revoked"
	})
}

// TestKeysWithoutRedis: with Redis down, keys still authenticate (from memory, else Postgres), a
// revocation is in force at once on the replica that made it and within auth.key_local_ttl on
// the others; when Redis is back, revocations are announced again.
func TestKeysWithoutRedis(t *testing.T) {
	const localTTL = 3 * time.Second
	redisServer := testenv.StartRedis(t)
	a := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Redis.URL = config.Secret(redisServer.URL())
		c.Auth.KeyLocalTTL = localTTL
	})
	b := startIdentityWith(t, a.cfg, a.clerk, a.secret)
	token := a.session(t, "user_outage")
	held := a.createKey(t, token, `{"name":"held in memory"}`)
	fresh := a.createKey(t, token, `{"name":"never used"}`)
	for _, replica := range []*identity{a, b} {
		if resp := replica.Do(t, "GET", "/test/keyed", "", bearer(held.Key)); resp.Status != http.StatusOK {
			t.Fatalf("before the outage: %d %s", resp.Status, resp.Body)
		}
	}

	redisServer.Stop()
	for name, key := range map[string]string{"a key held in memory": held.Key, "a key never seen": fresh.Key} {
		for _, replica := range []*identity{a, b} {
			if resp := replica.Do(t, "GET", "/test/keyed", "", bearer(key)); resp.Status != http.StatusOK {
				t.Fatalf("%s without Redis: %d %s", name, resp.Status, resp.Body)
			}
		}
	}
	if resp := a.Do(t, "DELETE", "/api/keys/"+held.ID, "", bearer(token)); resp.Status != http.StatusNoContent {
		t.Fatalf("revoking without Redis: %d %s", resp.Status, resp.Body)
	}
	if resp := a.Do(t, "GET", "/test/keyed", "", bearer(held.Key)); resp.Status != http.StatusUnauthorized {
		t.Fatalf("the revoking replica still accepts the key: %d %s", resp.Status, resp.Body)
	}
	refused(t, b, held.Key, localTTL+time.Second)

	// Back: both replicas subscribe again, and from then on B drops a revoked key within a second,
	// long before its copy lapses. The first revocation is also a barrier: B refuses it only once
	// it has handled its subscription (which empties its memory) or the announcement after it, so
	// the second can only reach B through its announcement.
	redisServer.Start()
	eventually(t, "both replicas to subscribe again", 10*time.Second, func() bool {
		n, err := testenv.OpenRedis(t, redisServer.URL()).PubSubNumSub(t.Context(), "apikeys:revoked").Result()
		return err == nil && n["apikeys:revoked"] == 2
	})
	late := a.createKey(t, token, `{"name":"after the outage"}`)
	for _, k := range []createdKey{fresh, late} {
		if resp := b.Do(t, "GET", "/test/keyed", "", bearer(k.Key)); resp.Status != http.StatusOK {
			t.Fatalf("after the outage: %d %s", resp.Status, resp.Body)
		}
		if resp := a.Do(t, "DELETE", "/api/keys/"+k.ID, "", bearer(token)); resp.Status != http.StatusNoContent {
			t.Fatalf("revoking after the outage: %d %s", resp.Status, resp.Body)
		}
		refused(t, b, k.Key, time.Second)
	}
}

// TestKeyUseIsRecorded: a request only notes its key's use; the use reaches last_used_at in the
// background within auth.last_used_resolution, and a replica that stops writes what it noted.
func TestKeyUseIsRecorded(t *testing.T) {
	tests := []struct {
		name       string
		resolution time.Duration
		stopB      bool
	}{
		{"written in the background", 200 * time.Millisecond, false},
		{"written when the replica stops", time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Auth.LastUsedResolution = tt.resolution })
			b := startIdentityWith(t, a.cfg, a.clerk, a.secret)
			token := a.session(t, "user_used")
			k := a.createKey(t, token, `{"name":"used on B"}`)
			if resp := b.Do(t, "GET", "/test/keyed", "", bearer(k.Key)); resp.Status != http.StatusOK {
				t.Fatalf("using the key: %d %s", resp.Status, resp.Body)
			}
			if tt.stopB {
				if lastUsed(t, a, token) != nil {
					t.Fatal("last_used_at written on the request's path")
				}
				b.Stop(t)
				if lastUsed(t, a, token) == nil {
					t.Fatal("the stopped replica did not write the key's use")
				}
				return
			}
			eventually(t, "last_used_at to be written", 5*time.Second, func() bool { return lastUsed(t, a, token) != nil })
		})
	}
}

// lastUsed is the last_used_at of the user's only key, as GET /api/keys on replica shows it.
func lastUsed(t *testing.T, replica *identity, token string) *time.Time {
	t.Helper()
	resp := replica.Do(t, "GET", "/api/keys", "", bearer(token))
	var listed struct {
		Keys []struct {
			LastUsedAt *time.Time `json:"last_used_at"`
		} `json:"keys"`
	}
	mustJSON(t, resp.Body, &listed)
	if resp.Status != http.StatusOK || len(listed.Keys) != 1 {
		t.Fatalf("GET /api/keys: %d %s", resp.Status, resp.Body)
	}
	return listed.Keys[0].LastUsedAt
}
