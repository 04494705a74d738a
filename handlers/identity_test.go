package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// TestSessionTokensThatFail: every way a session token can be wrong gets a 401 that says which,
// without echoing the token.
func TestSessionTokensThatFail(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Clerk.AuthorizedParties = []string{"https://app.example.com"}
	})
	id.clerk.SetUser(clerkstub.User{ID: "user_a", Email: "a@example.com"})
	ok := clerkstub.TokenOptions{Subject: "user_a", AuthorizedParty: "https://app.example.com"}
	with := func(mutate func(*clerkstub.TokenOptions)) string {
		o := ok
		mutate(&o)
		return id.clerk.Token(t, o)
	}
	tests := []struct {
		name     string
		headers  map[string]string
		wantCode string
	}{
		{"no credentials", nil, "missing_credentials"},
		{"not a bearer header", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_authorization_header"},
		{"malformed token", bearer("not.a.jwt"), "invalid_token"},
		{"expired", bearer(with(func(o *clerkstub.TokenOptions) {
			o.IssuedAt = time.Now().Add(-10 * time.Minute)
			o.ExpiresIn = time.Minute
		})), "token_expired"},
		{"not yet valid", bearer(with(func(o *clerkstub.TokenOptions) { o.NotBefore = time.Now().Add(10 * time.Minute) })), "token_not_yet_valid"},
		{"signed by another key", bearer(with(func(o *clerkstub.TokenOptions) { o.SignWith = clerkstub.NewKey(t) })), "invalid_signature"},
		{"wrong authorized party", bearer(with(func(o *clerkstub.TokenOptions) { o.AuthorizedParty = "https://evil.example.com" })), "invalid_authorized_party"},
		{"token and API key together", map[string]string{"Authorization": "Bearer " + with(func(*clerkstub.TokenOptions) {}), "X-API-Key": "isk_x"}, "ambiguous_credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := id.Do(t, "GET", "/api/users/me", "", tt.headers)
			if resp.Status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", resp.Status, resp.Body)
			}
			if code := errorCode(t, resp); code != tt.wantCode {
				t.Errorf("code %q, want %q", code, tt.wantCode)
			}
			if auth := tt.headers["Authorization"]; len(auth) > 20 && strings.Contains(resp.Body, auth[len(auth)-20:]) {
				t.Errorf("the token leaked into the response: %s", resp.Body)
			}
		})
	}
	t.Run("a good token passes", func(t *testing.T) {
		if resp := id.Do(t, "GET", "/api/users/me", "", bearer(id.clerk.Token(t, ok))); resp.Status != http.StatusOK {
			t.Fatalf("status %d: %s", resp.Status, resp.Body)
		}
	})
}

// TestUsersMe follows the seed's first step: a Clerk user's first request creates their row from
// Clerk's Backend API, and the profile comes back with counts and limits.
func TestUsersMe(t *testing.T) {
	id := startIdentity(t, nil)
	id.clerk.SetUser(clerkstub.User{ID: "user_me", Email: "me@example.com", OtherEmails: []string{"old@example.com"},
		FirstName: "Grace", LastName: "Hopper", Username: "grace", ImageURL: "https://img.example.com/g.png"})
	token := id.clerk.Token(t, clerkstub.TokenOptions{Subject: "user_me"})

	resp := id.Do(t, "GET", "/api/users/me", "", bearer(token))
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	var me struct {
		ID            string `json:"id"`
		ClerkUserID   string `json:"clerk_user_id"`
		Email         string `json:"email"`
		FirstName     string `json:"first_name"`
		LastName      string `json:"last_name"`
		Username      string `json:"username"`
		ImageURL      string `json:"image_url"`
		ActiveAPIKeys int    `json:"active_api_keys"`
		Running       int    `json:"running_sandboxes"`
		Limits        struct {
			MaxAPIKeys int `json:"max_api_keys"`
		} `json:"limits"`
	}
	mustJSON(t, resp.Body, &me)
	want := []string{"user_me", "me@example.com", "Grace", "Hopper", "grace", "https://img.example.com/g.png"}
	got := []string{me.ClerkUserID, me.Email, me.FirstName, me.LastName, me.Username, me.ImageURL}
	if fmt.Sprint(got) != fmt.Sprint(want) || me.ID == "" || me.Limits.MaxAPIKeys != 25 {
		t.Fatalf("profile %s", resp.Body)
	}
	id.createKey(t, token, `{"name":"one"}`)
	mustJSON(t, id.Do(t, "GET", "/api/users/me", "", bearer(token)).Body, &me)
	if me.ActiveAPIKeys != 1 {
		t.Errorf("active_api_keys = %d after creating one", me.ActiveAPIKeys)
	}
	if n := id.clerk.Requests("/v1/users/user_me"); n != 1 {
		t.Errorf("Clerk's user API called %d times, want once (profile cached while fresh)", n)
	}
	if n := id.clerk.Requests("/v1/jwks"); n != 1 {
		t.Errorf("JWKS fetched %d times, want once", n)
	}
}

// TestProfileSurvivesClerkOutage: with Clerk unreachable, requests succeed with what is stored,
// and a brand-new user still gets in (offline PEM verification).
func TestProfileSurvivesClerkOutage(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, stub *clerkstub.Server) {
		c.Clerk.JWTKey = stub.PublicKeyPEM()
		c.Clerk.ProfileTTL = time.Millisecond // always stale: every uncached request asks Clerk
	})
	token := id.session(t, "user_out")
	if resp := id.Do(t, "GET", "/api/users/me", "", bearer(token)); resp.Status != http.StatusOK {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	id.clerk.SetDown(true)
	flushUserCache(t, id)
	resp := id.Do(t, "GET", "/api/users/me", "", bearer(token))
	if resp.Status != http.StatusOK || !strings.Contains(resp.Body, `"email":"user_out@example.com"`) {
		t.Fatalf("with Clerk down: %d %s", resp.Status, resp.Body)
	}
	fresh := id.clerk.Token(t, clerkstub.TokenOptions{Subject: "user_new"})
	resp = id.Do(t, "GET", "/api/users/me", "", bearer(fresh))
	if resp.Status != http.StatusOK || !strings.Contains(resp.Body, `"clerk_user_id":"user_new"`) {
		t.Fatalf("new user with Clerk down: %d %s", resp.Status, resp.Body)
	}
	if n := id.clerk.Requests("/v1/jwks"); n != 0 {
		t.Errorf("offline mode fetched JWKS %d times", n)
	}
}

func flushUserCache(t *testing.T, id *identity) {
	t.Helper()
	db := testenv.OpenRedis(t, id.cfg.Redis.URL.Reveal())
	keys, _ := db.Keys(t.Context(), "user:clerk:*").Result()
	if len(keys) > 0 {
		db.Del(t.Context(), keys...)
	}
}

// TestKeyLifecycle follows a key from creation to revocation, across two replicas.
func TestKeyLifecycle(t *testing.T) {
	a := startIdentity(t, nil)
	b := startIdentityWith(t, a.cfg, a.clerk, a.secret)
	token := a.session(t, "user_keys")

	k := a.createKey(t, token, `{"name":"Test Key"}`)
	if !apikeys.WellFormed(k.Key) || !strings.HasPrefix(k.Key, "isk_") || k.Name != "Test Key" ||
		!strings.HasPrefix(k.Key, k.Prefix) || !strings.HasSuffix(k.Key, k.LastFour) ||
		fmt.Sprint(k.Scopes) != "[sandboxes:read sandboxes:write]" || k.ExpiresAt != nil {
		t.Fatalf("created key %+v", k)
	}
	for name, headers := range map[string]map[string]string{
		"Authorization on replica A": bearer(k.Key),
		"X-API-Key on replica B":     {"X-API-Key": k.Key},
	} {
		app := a.App
		if strings.Contains(name, "B") {
			app = b.App
		}
		if resp := app.Do(t, "POST", "/test/keyed", "", headers); resp.Status != http.StatusOK || !strings.Contains(resp.Body, `"kind":"api_key"`) {
			t.Fatalf("%s: %d %s", name, resp.Status, resp.Body)
		}
	}

	list := a.Do(t, "GET", "/api/keys", "", bearer(token))
	if list.Status != http.StatusOK || strings.Contains(list.Body, k.Key) || strings.Contains(list.Body, `"key":`) ||
		strings.Contains(list.Body, "hash") || !strings.Contains(list.Body, k.LastFour) {
		t.Fatalf("list must be masked: %s", list.Body)
	}
	var listed struct {
		Keys []struct {
			LastUsedAt *time.Time `json:"last_used_at"`
		} `json:"keys"`
	}
	mustJSON(t, list.Body, &listed)
	if len(listed.Keys) != 1 || listed.Keys[0].LastUsedAt == nil {
		t.Fatalf("last_used_at not recorded: %s", list.Body)
	}

	for i := range 2 {
		if resp := a.Do(t, "DELETE", "/api/keys/"+k.ID, "", bearer(token)); resp.Status != http.StatusNoContent {
			t.Fatalf("revoke #%d: %d %s", i+1, resp.Status, resp.Body)
		}
	}
	// Replica A refuses the key at once; B hears of it within a second.
	if resp := a.Do(t, "GET", "/test/keyed", "", bearer(k.Key)); resp.Status != http.StatusUnauthorized || errorCode(t, resp) != "api_key_revoked" {
		t.Fatalf("revoked key on replica A: %d %s", resp.Status, resp.Body)
	}
	eventually(t, "replica B to refuse the revoked key", time.Second, func() bool {
		resp := b.Do(t, "GET", "/test/keyed", "", bearer(k.Key))
		return resp.Status == http.StatusUnauthorized && errorCode(t, resp) == "api_key_revoked"
	})
	list = a.Do(t, "GET", "/api/keys", "", bearer(token))
	if !strings.Contains(list.Body, `"revoked_at":"`) {
		t.Errorf("revoked_at missing: %s", list.Body)
	}
}

func TestExpiredKey(t *testing.T) {
	id := startIdentity(t, nil)
	token := id.session(t, "user_exp")
	k := id.createKey(t, token, fmt.Sprintf(`{"name":"short","expires_at":%q}`, time.Now().Add(1500*time.Millisecond).Format(time.RFC3339Nano)))
	if resp := id.Do(t, "GET", "/test/keyed", "", bearer(k.Key)); resp.Status != http.StatusOK {
		t.Fatalf("fresh key: %d %s", resp.Status, resp.Body)
	}
	time.Sleep(1600 * time.Millisecond)
	resp := id.Do(t, "GET", "/test/keyed", "", bearer(k.Key))
	if resp.Status != http.StatusUnauthorized || errorCode(t, resp) != "api_key_expired" {
		t.Fatalf("expired key: %d %s", resp.Status, resp.Body)
	}
}

// TestMistypedKeyNeedsNoDatabase: the checksum refuses a mistyped key before any query.
func TestMistypedKeyNeedsNoDatabase(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { quietLoops(c) })
	k := id.createKey(t, id.session(t, "user_typo"), `{"name":"typo"}`)
	settled(t, id.queries) // what the test counts next is its own requests' doing
	typo := []byte(k.Key)
	i := len(apikeys.Prefix) + 5
	typo[i] = map[bool]byte{true: 'B', false: 'A'}[typo[i] == 'A']
	tests := map[string]string{"one character changed": string(typo), "truncated": k.Key[:len(k.Key)-1], "random": "isk_nope"}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			before := id.queries.Load()
			resp := id.Do(t, "GET", "/test/keyed", "", bearer(raw))
			if resp.Status != http.StatusUnauthorized || errorCode(t, resp) != "invalid_api_key" {
				t.Fatalf("%d %s", resp.Status, resp.Body)
			}
			if after := id.queries.Load(); after != before {
				t.Errorf("%d database queries for a mistyped key, want none", after-before)
			}
		})
	}
}

func TestKeyScopesAndKinds(t *testing.T) {
	id := startIdentity(t, nil)
	token := id.session(t, "user_scopes")
	readOnly := id.createKey(t, token, `{"name":"reader","scopes":["sandboxes:read"]}`)
	full := id.createKey(t, token, `{"name":"writer"}`)
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		key        string
		wantStatus int
		wantCode   string
	}{
		{"read-only key reads", "GET", "/test/keyed", "", readOnly.Key, 200, ""},
		{"read-only key cannot write", "POST", "/test/keyed", "", readOnly.Key, 403, "insufficient_scope"},
		{"full key writes", "POST", "/test/keyed", "", full.Key, 200, ""},
		{"a key cannot mint keys", "POST", "/api/keys", `{"name":"x"}`, full.Key, 403, "session_required"},
		{"a key cannot list keys", "GET", "/api/keys", "", full.Key, 403, "session_required"},
		{"a key cannot read the profile", "GET", "/api/users/me", "", full.Key, 403, "session_required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := id.Do(t, tt.method, tt.path, tt.body, bearer(tt.key))
			if resp.Status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.Status, tt.wantStatus, resp.Body)
			}
			if tt.wantCode != "" && errorCode(t, resp) != tt.wantCode {
				t.Errorf("code %s, want %s", errorCode(t, resp), tt.wantCode)
			}
		})
	}
}

func TestKeyValidationAndLimits(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Auth.MaxKeysPerUser = 2 })
	token := id.session(t, "user_valid")
	tests := []struct {
		name      string
		body      string
		wantCode  string
		wantField string
	}{
		{"empty name", `{"name":""}`, "validation_failed", "name"},
		{"blank name", `{"name":"   "}`, "validation_failed", "name"},
		{"name too long", fmt.Sprintf(`{"name":%q}`, strings.Repeat("n", 101)), "validation_failed", "name"},
		{"unknown scope", `{"name":"k","scopes":["admin"]}`, "validation_failed", "scopes"},
		{"no scopes", `{"name":"k","scopes":[]}`, "validation_failed", "scopes"},
		{"expiry in the past", `{"name":"k","expires_at":"2001-01-01T00:00:00Z"}`, "validation_failed", "expires_at"},
		{"expiry not a time", `{"name":"k","expires_at":"tomorrow"}`, "validation_failed", "expires_at"},
		{"name not a string", `{"name":5}`, "validation_failed", "name"},
		{"unknown field", `{"name":"k","admin":true}`, "validation_failed", "admin"},
		{"not JSON", `{"name":`, "invalid_json", ""},
		{"trailing brace", `{"name":"k"}}`, "invalid_json", ""},
		{"two objects", `{"name":"k"}{"name":"l"}`, "invalid_json", ""},
		{"empty body", ``, "invalid_json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := id.Do(t, "POST", "/api/keys", tt.body, bearer(token))
			if resp.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.Status, resp.Body)
			}
			var body struct {
				Error struct{ Code, Field string } `json:"error"`
			}
			mustJSON(t, resp.Body, &body)
			if body.Error.Code != tt.wantCode || body.Error.Field != tt.wantField {
				t.Errorf("got %s/%s, want %s/%s", body.Error.Code, body.Error.Field, tt.wantCode, tt.wantField)
			}
		})
	}
	if list := id.Do(t, "GET", "/api/keys", "", bearer(token)); list.Body != `{"keys":[]}` {
		t.Fatalf("bad input created keys: %s", list.Body)
	}
	first := id.createKey(t, token, `{"name":"1"}`)
	id.createKey(t, token, `{"name":"2"}`)
	resp := id.Do(t, "POST", "/api/keys", `{"name":"3"}`, bearer(token))
	if resp.Status != http.StatusConflict || errorCode(t, resp) != "key_limit_reached" {
		t.Fatalf("third key: %d %s", resp.Status, resp.Body)
	}
	id.Do(t, "DELETE", "/api/keys/"+first.ID, "", bearer(token))
	id.createKey(t, token, `{"name":"3"}`) // a revoked key frees its slot
}

func TestKeyTenancy(t *testing.T) {
	id := startIdentity(t, nil)
	alice, bob := id.session(t, "user_alice"), id.session(t, "user_bob")
	k := id.createKey(t, alice, `{"name":"alice's"}`)
	for name, path := range map[string]string{
		"another user's key": "/api/keys/" + k.ID,
		"an unknown id":      "/api/keys/00000000-0000-0000-0000-000000000001",
		"not an id":          "/api/keys/nope",
	} {
		resp := id.Do(t, "DELETE", path, "", bearer(bob))
		if resp.Status != http.StatusNotFound || errorCode(t, resp) != "not_found" {
			t.Errorf("%s: %d %s", name, resp.Status, resp.Body)
		}
	}
	if list := id.Do(t, "GET", "/api/keys", "", bearer(bob)); list.Body != `{"keys":[]}` {
		t.Errorf("bob sees %s", list.Body)
	}
	if resp := id.Do(t, "GET", "/test/keyed", "", bearer(k.Key)); resp.Status != http.StatusOK {
		t.Fatalf("bob's attempt must not revoke alice's key: %d", resp.Status)
	}
}

func TestClerkWebhooks(t *testing.T) {
	id := startIdentity(t, nil)
	id.clerk.SetUser(clerkstub.User{ID: "user_hook", Email: "hook@example.com", FirstName: "Hook"})
	created := map[string]any{"type": "user.created", "object": "event", "data": json.RawMessage(id.clerk.UserJSON("user_hook"))}

	tests := []struct {
		name       string
		msgID      string
		event      any
		skew       time.Duration
		tamper     bool
		wantStatus int
		wantCode   string
	}{
		{"valid user.created", "msg_1", created, 0, false, 200, ""},
		{"replayed delivery is acknowledged, not applied again", "msg_1", created, 0, false, 200, ""},
		{"tampered body", "msg_2", created, 0, true, 401, "invalid_signature"},
		{"stale timestamp", "msg_3", created, -time.Hour, false, 401, "stale_webhook"},
		{"unknown event type", "msg_4", map[string]any{"type": "session.created", "data": map[string]any{}}, 0, false, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := id.webhook(t, tt.msgID, tt.event, tt.skew, tt.tamper)
			if resp.Status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.Status, tt.wantStatus, resp.Body)
			}
			if tt.wantCode != "" && errorCode(t, resp) != tt.wantCode {
				t.Errorf("code %s, want %s", errorCode(t, resp), tt.wantCode)
			}
		})
	}
	t.Run("missing signature headers", func(t *testing.T) {
		resp := id.Do(t, "POST", "/api/webhooks/clerk", `{"type":"user.created"}`, nil)
		if resp.Status != http.StatusBadRequest || errorCode(t, resp) != "missing_signature_headers" {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
	})
	t.Run("user.updated syncs the profile", func(t *testing.T) {
		token := id.clerk.Token(t, clerkstub.TokenOptions{Subject: "user_hook"})
		if resp := id.Do(t, "GET", "/api/users/me", "", bearer(token)); resp.Status != http.StatusOK {
			t.Fatalf("before the update: %d %s", resp.Status, resp.Body) // also caches Clerk's signing keys
		}
		id.clerk.SetUser(clerkstub.User{ID: "user_hook", Email: "new@example.com", FirstName: "Renamed"})
		updated := map[string]any{"type": "user.updated", "data": json.RawMessage(id.clerk.UserJSON("user_hook"))}
		if resp := id.webhook(t, "msg_5", updated, 0, false); resp.Status != http.StatusOK {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
		id.clerk.SetDown(true) // the profile must come from the webhook, not from a fetch
		defer id.clerk.SetDown(false)
		me := id.Do(t, "GET", "/api/users/me", "", bearer(token))
		if !strings.Contains(me.Body, `"email":"new@example.com"`) || !strings.Contains(me.Body, `"first_name":"Renamed"`) {
			t.Fatalf("profile not synced: %s", me.Body)
		}
	})
	t.Run("user.deleted revokes every key and the session", func(t *testing.T) {
		token := id.clerk.Token(t, clerkstub.TokenOptions{Subject: "user_hook"})
		k := id.createKey(t, token, `{"name":"doomed"}`)
		if resp := id.Do(t, "GET", "/test/keyed", "", bearer(k.Key)); resp.Status != http.StatusOK {
			t.Fatalf("key before deletion: %d", resp.Status)
		}
		deleted := map[string]any{"type": "user.deleted", "data": map[string]any{"id": "user_hook", "object": "user", "deleted": true}}
		if resp := id.webhook(t, "msg_6", deleted, 0, false); resp.Status != http.StatusOK {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
		if resp := id.Do(t, "GET", "/test/keyed", "", bearer(k.Key)); resp.Status != http.StatusUnauthorized {
			t.Fatalf("key after user deletion: %d %s", resp.Status, resp.Body)
		}
		if resp := id.Do(t, "GET", "/api/users/me", "", bearer(token)); resp.Status != http.StatusUnauthorized || errorCode(t, resp) != "account_deleted" {
			t.Fatalf("session after deletion: %d %s", resp.Status, resp.Body)
		}
	})
}

func TestRateLimit(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.RateLimit.PrincipalBurst, c.RateLimit.PrincipalPerMin = 3, 3
		c.RateLimit.AnonymousBurst, c.RateLimit.AnonymousPerMin = 2, 2
	})
	k := id.createKey(t, id.session(t, "user_rl"), `{"name":"busy"}`)
	var last testenv.Response
	for i := range 4 {
		last = id.Do(t, "GET", "/test/keyed", "", bearer(k.Key))
		if i < 3 {
			if last.Status != http.StatusOK || last.Header.Get("RateLimit-Limit") != "3" ||
				last.Header.Get("RateLimit-Remaining") != strconv.Itoa(2-i) || last.Header.Get("RateLimit-Reset") == "" {
				t.Fatalf("request %d: %d headers %v", i+1, last.Status, last.Header)
			}
		}
	}
	if last.Status != http.StatusTooManyRequests || errorCode(t, last) != "rate_limited" {
		t.Fatalf("4th request: %d %s", last.Status, last.Body)
	}
	if ra, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q", last.Header.Get("Retry-After"))
	}
	// Failed authentication is limited per client IP.
	codes := []int{}
	for range 3 {
		codes = append(codes, id.Do(t, "GET", "/test/keyed", "", bearer("isk_wrong")).Status)
	}
	if fmt.Sprint(codes) != "[401 401 429]" {
		t.Errorf("failed attempts got %v, want [401 401 429]", codes)
	}
}

func TestRateLimitFailsOpenWithoutRedis(t *testing.T) {
	redisServer := testenv.StartRedis(t)
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Redis.URL = config.Secret(redisServer.URL())
		c.RateLimit.PrincipalBurst = 1
	})
	k := id.createKey(t, id.session(t, "user_open"), `{"name":"k"}`)
	redisServer.Stop()
	for i := range 3 {
		resp := id.Do(t, "GET", "/test/keyed", "", bearer(k.Key))
		if resp.Status != http.StatusOK || resp.Header.Get("RateLimit-Limit") != "" {
			t.Fatalf("request %d with Redis down: %d %s", i+1, resp.Status, resp.Body)
		}
	}
}
