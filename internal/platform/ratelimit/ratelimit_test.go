package ratelimit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/middleware"
	"github.com/insien/orchestrator/internal/platform/ratelimit"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/providers"
)

func init() { gin.SetMode(gin.TestMode) }

// principalHeader stands in for authentication in these tests: it names the caller.
const principalHeader = "X-Test-Principal"

var rateHeaders = []string{ratelimit.HeaderLimit, ratelimit.HeaderRemaining, ratelimit.HeaderReset, ratelimit.HeaderRetryAfter}

// newClient connects as the service does (providers.NewRedis): among other settings, socket I/O
// follows the context's deadline, which is what bounds a check on a hung Redis.
func newClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	cfg := config.Default().Redis
	cfg.URL = config.Secret(url)
	rdb, err := providers.NewRedis(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// newLimiter builds the limiter under test and runs it as the app does, until the test ends.
func newLimiter(t *testing.T, cfg config.RateLimit, rdb *redis.Client, log *zap.Logger) *ratelimit.Limiter {
	t.Helper()
	l := ratelimit.New(ratelimit.Params{RateLimit: cfg, Redis: rdb, Log: log})
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Stop(context.Background()) })
	return l
}

// limits is an enabled configuration; tests override what they exercise.
func limits(perMin, burst int) config.RateLimit {
	return config.RateLimit{
		Enabled: true, FailureMode: "open",
		PrincipalPerMin: perMin, PrincipalBurst: burst,
		AnonymousPerMin: perMin, AnonymousBurst: burst,
	}
}

// api is a tiny engine shaped like the real one: /public is limited by IP, /private by principal.
type api struct {
	engine *gin.Engine
	mu     sync.Mutex
	served int
}

func newAPI(t *testing.T, l *ratelimit.Limiter) *api {
	t.Helper()
	a := &api{engine: gin.New()}
	if err := a.engine.SetTrustedProxies(nil); err != nil {
		t.Fatal(err)
	}
	a.engine.Use(middleware.RequestIDs())
	ok := func(c *gin.Context) {
		a.mu.Lock()
		a.served++
		a.mu.Unlock()
		c.String(http.StatusOK, "ok")
	}
	a.engine.GET("/public", l.ByIP(), ok)
	// As the authenticator does: a principal's own bucket, else the client IP's.
	a.engine.GET("/private", func(c *gin.Context) {
		if key := c.GetHeader(principalHeader); key != "" {
			l.Allow(c, ratelimit.Principal, key)
			return
		}
		l.Allow(c, ratelimit.Anonymous, c.ClientIP())
	}, ok)
	return a
}

func (a *api) servedCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.served
}

// get sends GET path from ip, as principal when it is not empty.
func (a *api) get(path, ip, principal string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = ip + ":40000"
	if principal != "" {
		req.Header.Set(principalHeader, principal)
	}
	rec := httptest.NewRecorder()
	a.engine.ServeHTTP(rec, req)
	return rec
}

func intHeader(t *testing.T, rec *httptest.ResponseRecorder, name string) int {
	t.Helper()
	raw := rec.Header().Get(name)
	n, err := strconv.Atoi(raw)
	if err != nil {
		t.Fatalf("%s = %q, want an integer", name, raw)
	}
	return n
}

func assertNoRateHeaders(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	for _, h := range rateHeaders {
		if v := rec.Header().Get(h); v != "" {
			t.Errorf("%s = %q, want no header", h, v)
		}
	}
}

func assertError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	var body apierror.Body
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not the error shape: %v", rec.Body, err)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		t.Errorf("error = %+v, want code %q and a message", body.Error, code)
	}
	if id := rec.Header().Get(middleware.HeaderRequestID); body.Error.RequestID == "" || body.Error.RequestID != id {
		t.Errorf("request_id = %q, want the X-Request-ID %q", body.Error.RequestID, id)
	}
}

func TestBurstIsAllowedThenTooManyRequests(t *testing.T) {
	const burst = 5
	// 6 per minute: one token every 10 s, so none comes back while the test runs.
	const perToken = 10
	cases := []struct {
		name, path, principal string
	}{
		{"anonymous by IP", "/public", ""},
		{"principal", "/private", "user:0b6e5a3c-4e1f-4a58-9c77-0d7c2f1e9a10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rdb := newClient(t, testenv.RedisURL(t))
			a := newAPI(t, newLimiter(t, limits(6, burst), rdb, zap.NewNop()))

			for i := 1; i <= burst; i++ {
				rec := a.get(tc.path, "192.0.2.1", tc.principal)
				if rec.Code != http.StatusOK {
					t.Fatalf("request %d: status %d, want 200; body %s", i, rec.Code, rec.Body)
				}
				if got := intHeader(t, rec, ratelimit.HeaderLimit); got != burst {
					t.Errorf("request %d: Limit = %d, want the burst %d", i, got, burst)
				}
				if got := intHeader(t, rec, ratelimit.HeaderRemaining); got != burst-i {
					t.Errorf("request %d: Remaining = %d, want %d", i, got, burst-i)
				}
				// i tokens are out, each comes back after 10 s: full again in just under i*10 s.
				if got := intHeader(t, rec, ratelimit.HeaderReset); got < i*perToken-1 || got > i*perToken {
					t.Errorf("request %d: Reset = %d, want about %d", i, got, i*perToken)
				}
				if v := rec.Header().Get(ratelimit.HeaderRetryAfter); v != "" {
					t.Errorf("request %d: Retry-After = %q on an allowed request", i, v)
				}
			}

			rec := a.get(tc.path, "192.0.2.1", tc.principal)
			assertError(t, rec, http.StatusTooManyRequests, "rate_limited")
			if got := intHeader(t, rec, ratelimit.HeaderRetryAfter); got < 1 || got > perToken {
				t.Errorf("Retry-After = %d, want 1..%d", got, perToken)
			}
			if got := intHeader(t, rec, ratelimit.HeaderLimit); got != burst {
				t.Errorf("Limit = %d, want %d", got, burst)
			}
			if got := intHeader(t, rec, ratelimit.HeaderRemaining); got != 0 {
				t.Errorf("Remaining = %d, want 0", got)
			}
			if got := intHeader(t, rec, ratelimit.HeaderReset); got < burst*perToken-1 || got > burst*perToken {
				t.Errorf("Reset = %d, want about %d", got, burst*perToken)
			}
			if got := a.servedCount(); got != burst {
				t.Errorf("handler ran %d times, want %d: a 429 must stop the chain", got, burst)
			}
		})
	}
}

func TestBucketsAreSeparate(t *testing.T) {
	type req struct{ path, ip, principal string }
	cases := []struct {
		name      string
		exhaust   req // spends the whole burst of this bucket
		then      req // must still be served (or not, when it shares the bucket)
		wantLimit bool
	}{
		{"another IP", req{"/public", "192.0.2.1", ""}, req{"/public", "192.0.2.2", ""}, false},
		{"another principal", req{"/private", "192.0.2.1", "user:a"}, req{"/private", "192.0.2.1", "user:b"}, false},
		{"a principal behind an exhausted IP", req{"/public", "192.0.2.1", ""}, req{"/private", "192.0.2.1", "user:a"}, false},
		{"an IP whose principal is exhausted", req{"/private", "192.0.2.1", "user:a"}, req{"/public", "192.0.2.1", ""}, false},
		{"the same string in the other class", req{"/private", "192.0.2.9", "192.0.2.1"}, req{"/public", "192.0.2.1", ""}, false},
		{"the same IP again", req{"/public", "192.0.2.1", ""}, req{"/public", "192.0.2.1", ""}, true},
		{"no principal falls back to the IP", req{"/public", "192.0.2.1", ""}, req{"/private", "192.0.2.1", ""}, true},
		{"the same principal from another IP", req{"/private", "192.0.2.1", "key:k1"}, req{"/private", "192.0.2.2", "key:k1"}, true},
	}
	const burst = 3
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rdb := newClient(t, testenv.RedisURL(t))
			a := newAPI(t, newLimiter(t, limits(6, burst), rdb, zap.NewNop()))
			for range burst {
				if rec := a.get(tc.exhaust.path, tc.exhaust.ip, tc.exhaust.principal); rec.Code != http.StatusOK {
					t.Fatalf("exhausting: status %d", rec.Code)
				}
			}
			if rec := a.get(tc.exhaust.path, tc.exhaust.ip, tc.exhaust.principal); rec.Code != http.StatusTooManyRequests {
				t.Fatalf("bucket not exhausted: status %d", rec.Code)
			}
			rec := a.get(tc.then.path, tc.then.ip, tc.then.principal)
			switch {
			case tc.wantLimit && rec.Code != http.StatusTooManyRequests:
				t.Errorf("status %d, want 429 from the shared bucket", rec.Code)
			case !tc.wantLimit && rec.Code != http.StatusOK:
				t.Errorf("status %d, want 200 from a bucket of its own", rec.Code)
			case !tc.wantLimit && intHeader(t, rec, ratelimit.HeaderRemaining) != burst-1:
				t.Errorf("Remaining = %s, want %d from a fresh bucket", rec.Header().Get(ratelimit.HeaderRemaining), burst-1)
			}
		})
	}
}

func TestBucketKeysNameClassAndKey(t *testing.T) {
	rdb := newClient(t, testenv.RedisURL(t))
	a := newAPI(t, newLimiter(t, limits(6, 3), rdb, zap.NewNop()))
	a.get("/public", "192.0.2.1", "")
	a.get("/private", "192.0.2.1", "user:a")
	keys, err := rdb.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"rate:anonymous:192.0.2.1": true, "rate:principal:user:a": true}
	if len(keys) != len(want) || !want[keys[0]] || !want[keys[1]] {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	for _, k := range keys {
		if ttl := rdb.TTL(t.Context(), k).Val(); ttl <= 0 || ttl > 10*time.Second {
			t.Errorf("%s expires in %v, want the bucket to expire once full (10 s)", k, ttl)
		}
	}
}

func TestTokensComeBack(t *testing.T) {
	rdb := newClient(t, testenv.RedisURL(t))
	// 600 per minute: one token every 100 ms.
	a := newAPI(t, newLimiter(t, limits(600, 2), rdb, zap.NewNop()))
	for range 2 {
		if rec := a.get("/public", "192.0.2.1", ""); rec.Code != http.StatusOK {
			t.Fatalf("status %d, want 200", rec.Code)
		}
	}
	rec := a.get("/public", "192.0.2.1", "")
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", rec.Code)
	}
	if got := intHeader(t, rec, ratelimit.HeaderRetryAfter); got != 1 {
		t.Errorf("Retry-After = %d, want 1 (100 ms rounded up)", got)
	}
	time.Sleep(150 * time.Millisecond)
	rec = a.get("/public", "192.0.2.1", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("after one token's time: status %d, want 200", rec.Code)
	}
	if got := intHeader(t, rec, ratelimit.HeaderRemaining); got != 0 {
		t.Errorf("Remaining = %d, want 0: one token came back and was spent", got)
	}
	time.Sleep(250 * time.Millisecond)
	rec = a.get("/public", "192.0.2.1", "")
	if got := intHeader(t, rec, ratelimit.HeaderRemaining); rec.Code != http.StatusOK || got != 1 {
		t.Errorf("after a full refill: status %d, Remaining %d, want 200 and 1", rec.Code, got)
	}
}

func TestDisabledLimitsNothing(t *testing.T) {
	rdb := newClient(t, testenv.RedisURL(t))
	cfg := limits(6, 1)
	cfg.Enabled = false
	a := newAPI(t, newLimiter(t, cfg, rdb, zap.NewNop()))
	for i := range 5 {
		for _, rec := range []*httptest.ResponseRecorder{a.get("/public", "192.0.2.1", ""), a.get("/private", "192.0.2.1", "user:a")} {
			if rec.Code != http.StatusOK {
				t.Fatalf("request %d: status %d, want 200", i, rec.Code)
			}
			assertNoRateHeaders(t, rec)
		}
	}
	if n := rdb.DBSize(t.Context()).Val(); n != 0 {
		t.Errorf("Redis holds %d keys, want none: a disabled limiter must not touch Redis", n)
	}
}

func TestRedisFailure(t *testing.T) {
	const secretish = "key:6f1c1d7e-2b1e-4a39-8a55-3f7f0f2a9c11"
	cases := []struct {
		mode       string
		wantStatus int
	}{
		{"open", http.StatusOK},
		{"closed", http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			srv := testenv.StartRedis(t)
			core, logs := observer.New(zapcore.DebugLevel)
			cfg := limits(6, 100)
			cfg.FailureMode = tc.mode
			a := newAPI(t, newLimiter(t, cfg, newClient(t, srv.URL()), zap.New(core)))

			if rec := a.get("/private", "192.0.2.1", secretish); rec.Code != http.StatusOK || rec.Header().Get(ratelimit.HeaderLimit) == "" {
				t.Fatalf("with Redis up: status %d, headers %v", rec.Code, rec.Header())
			}
			srv.Stop()
			// The bucket was just reconciled, so this replica may decide it alone until the next
			// reconciliation fails; from then on the failure mode applies.
			deadline := time.Now().Add(time.Second)
			for a.get("/private", "192.0.2.1", secretish).Header().Get(ratelimit.HeaderLimit) != "" {
				if time.Now().After(deadline) {
					t.Fatal("Redis is down but the limiter still decides after a second")
				}
				time.Sleep(10 * time.Millisecond)
			}
			served := a.servedCount()
			start := time.Now()
			for i := range 20 {
				path, principal := "/public", ""
				if i%2 == 0 {
					path, principal = "/private", secretish
				}
				rec := a.get(path, "192.0.2.1", principal)
				if tc.wantStatus == http.StatusOK {
					if rec.Code != http.StatusOK {
						t.Fatalf("request %d: status %d, want 200 (fail open)", i, rec.Code)
					}
				} else {
					assertError(t, rec, http.StatusServiceUnavailable, "rate_limiter_unavailable")
				}
				assertNoRateHeaders(t, rec)
			}
			if got := a.servedCount(); tc.mode == "closed" && got != served {
				t.Errorf("handler ran %d times during the outage, want none", got-served)
			}

			// The first check gives up after its short timeout; the limiter then stops asking for a
			// while instead of making every request of the outage wait.
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("20 requests during the outage took %v, want the limiter to stop waiting on Redis", took)
			}
			warnings := logs.FilterLevelExact(zapcore.WarnLevel).All()
			if len(warnings) != 1 || logs.Len() != 1 {
				t.Fatalf("logged %d entries (%d warnings), want exactly one warning for the outage: %v", logs.Len(), len(warnings), logs.All())
			}
			if line := fmt.Sprint(warnings[0].Message, warnings[0].ContextMap()); strings.Contains(line, secretish) || strings.Contains(line, "192.0.2.1") {
				t.Errorf("the warning names the caller: %s", line)
			}

			srv.Start()
			deadline = time.Now().Add(5 * time.Second)
			for {
				rec := a.get("/public", "192.0.2.1", "")
				if rec.Code == http.StatusOK && rec.Header().Get(ratelimit.HeaderLimit) == "100" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Redis is back but the limiter still fails: status %d", rec.Code)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// A Redis that accepts connections and never answers must not hold requests for the client's
// 3 s read timeout.
func TestHungRedisDoesNotStallRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	for _, mode := range []string{"open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			cfg := limits(6, 10)
			cfg.FailureMode = mode
			a := newAPI(t, newLimiter(t, cfg, newClient(t, "redis://"+ln.Addr().String()), zap.NewNop()))
			start := time.Now()
			rec := a.get("/public", "192.0.2.1", "")
			if took := time.Since(start); took > time.Second {
				t.Errorf("the request took %v, want the limiter to give up after its short timeout", took)
			}
			if mode == "open" && rec.Code != http.StatusOK {
				t.Errorf("status %d, want 200 (fail open)", rec.Code)
			}
			if mode == "closed" {
				assertError(t, rec, http.StatusServiceUnavailable, "rate_limiter_unavailable")
			}
		})
	}
}

// countCommands counts the commands a client sends one at a time (not in a pipeline): the round
// trips a request waits for.
type countCommands struct{ n *atomic.Int64 }

func (h countCommands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h countCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A bucket in use is decided from the replica's own copy: only its first request waits for Redis.
func TestBusyBucketIsDecidedWithoutRedis(t *testing.T) {
	rdb := newClient(t, testenv.RedisURL(t))
	sent := new(atomic.Int64)
	rdb.AddHook(countCommands{n: sent})
	a := newAPI(t, newLimiter(t, limits(6000, 1000), rdb, zap.NewNop()))
	for i := range 50 {
		if i == 1 {
			sent.Store(0)
		}
		if rec := a.get("/private", "192.0.2.1", "key:busy"); rec.Code != http.StatusOK || intHeader(t, rec, ratelimit.HeaderRemaining) != 999-i {
			t.Fatalf("request %d: status %d, Remaining %s", i+1, rec.Code, rec.Header().Get(ratelimit.HeaderRemaining))
		}
	}
	if n := sent.Load(); n != 0 {
		t.Errorf("the 49 requests after the first waited for %d Redis round trips, want none", n)
	}
}

// Replicas draw on one bucket: what one lets through is charged to Redis within a reconciliation,
// and the other's first request of the bucket is decided there.
func TestReplicasShareOneBucket(t *testing.T) {
	url := testenv.RedisURL(t)
	rdb := newClient(t, url)
	const burst = 5 // 6 per minute: one token every 10 s, so none comes back while the test runs
	replicaA := newAPI(t, newLimiter(t, limits(6, burst), newClient(t, url), zap.NewNop()))
	replicaB := newAPI(t, newLimiter(t, limits(6, burst), newClient(t, url), zap.NewNop()))
	for range 3 {
		if rec := replicaA.get("/private", "192.0.2.1", "key:shared"); rec.Code != http.StatusOK {
			t.Fatalf("replica A: status %d", rec.Code)
		}
	}
	// Three tokens in use hold the shared bucket for 30 s.
	testenv.Eventually(t, "replica A's requests charged to Redis", time.Second, func() bool {
		return rdb.PTTL(t.Context(), "rate:principal:key:shared").Val() > 25*time.Second
	})
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusTooManyRequests} {
		rec := replicaB.get("/private", "192.0.2.2", "key:shared")
		if rec.Code != want || intHeader(t, rec, ratelimit.HeaderRemaining) != max(0, 1-i) {
			t.Fatalf("replica B request %d: status %d Remaining %s, want %d and %d", i+1, rec.Code,
				rec.Header().Get(ratelimit.HeaderRemaining), want, max(0, 1-i))
		}
	}
}
