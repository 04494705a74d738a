package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// rawDo sends a request whose headers may repeat, and reads the whole response.
func rawDo(t testing.TB, method, rawURL, body string, headers http.Header) testenv.Response {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = headers.Clone()
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return testenv.Response{Status: resp.StatusCode, Header: resp.Header, Body: string(data)}
}

// wantEdgeHeaders asserts what every answer carries: the security headers and a request id.
func wantEdgeHeaders(t testing.TB, what string, resp testenv.Response) {
	t.Helper()
	for name, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %s = %q, want %q", what, name, got, want)
		}
	}
	if resp.Header.Get("X-Request-ID") == "" {
		t.Errorf("%s: no X-Request-ID", what)
	}
}

// wantError asserts the one error shape with status and code, and returns its message.
func wantError(t testing.TB, what string, resp testenv.Response, status int, code string) string {
	t.Helper()
	var b apierror.Body
	if err := json.Unmarshal([]byte(resp.Body), &b); err != nil || resp.Status != status || b.Error.Code != code ||
		b.Error.Message == "" || b.Error.RequestID != resp.Header.Get("X-Request-ID") {
		t.Fatalf("%s: got %d %q, want %d %s in the error shape", what, resp.Status, resp.Body, status, code)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	wantEdgeHeaders(t, what, resp)
	return b.Error.Message
}

// TestCORSRefusalIsAnError: a browser origin that is not allowed gets 403 origin_not_allowed in
// the error shape (it was an empty 403), preflight included; allowed and same-origin requests pass.
func TestCORSRefusalIsAnError(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.HTTP.CORS.AllowedOrigins = []string{"https://app.example.com"}
	})
	evil := http.Header{"Origin": {"https://evil.example.com"}}
	wantError(t, "GET from a foreign origin", rawDo(t, "GET", id.URL+"/health", "", evil), http.StatusForbidden, "origin_not_allowed")
	preflight := http.Header{"Origin": {"https://evil.example.com"}, "Access-Control-Request-Method": {"POST"}}
	wantError(t, "preflight from a foreign origin", rawDo(t, "OPTIONS", id.URL+"/api/sandboxes", "", preflight), http.StatusForbidden, "origin_not_allowed")

	ok := rawDo(t, "GET", id.URL+"/health", "", http.Header{"Origin": {"https://app.example.com"}})
	if ok.Status != http.StatusOK || ok.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("allowed origin: %d %v", ok.Status, ok.Header)
	}
	same := rawDo(t, "GET", id.URL+"/health", "", http.Header{"Origin": {id.URL}})
	if same.Status != http.StatusOK {
		t.Fatalf("same origin: %d %s", same.Status, same.Body)
	}
}

// TestPathsAreExact: a trailing slash or an empty segment is a JSON 404 with the security headers
// and a request id, never Gin's 301 with an HTML body and neither.
func TestPathsAreExact(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_paths")
	auth := http.Header{"Authorization": {"Bearer " + u.key}}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/health/"},
		{"GET", "/api/sandboxes/"},
		{"POST", "/api/sandboxes/"},
		{"GET", "/api/keys/"},
		{"GET", "//health"},
		{"GET", "/api//sandboxes"},
	} {
		what := tc.method + " " + tc.path
		resp := rawDo(t, tc.method, id.URL+tc.path, "", auth)
		if resp.Header.Get("Location") != "" {
			t.Errorf("%s: redirected to %s", what, resp.Header.Get("Location"))
		}
		wantError(t, what, resp, http.StatusNotFound, "not_found")
	}
}

// TestHeadAnswersLikeGet: HEAD on a GET route answers as GET would, without a body; streaming
// routes answer at once and release what they hold; HEAD elsewhere is a 405 naming HEAD.
func TestHeadAnswersLikeGet(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_head")
	auth := http.Header{"Authorization": {"Bearer " + u.key}}
	sb := u.create(t, `{"command":["sh","-c","echo hello; sleep 300"]}`)

	for _, path := range []string{"/health", "/readyz", "/openapi.yaml", "/api/sandboxes", "/api/sandboxes/" + sb.ID} {
		get := rawDo(t, "GET", id.URL+path, "", auth)
		head := rawDo(t, "HEAD", id.URL+path, "", auth)
		if head.Status != get.Status || head.Body != "" || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d %q (%s), GET: %d (%s)", path, head.Status, head.Body,
				head.Header.Get("Content-Type"), get.Status, get.Header.Get("Content-Type"))
		}
		if cl := head.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(get.Body)) && path == "/health" {
			t.Errorf("HEAD %s: Content-Length %s, GET body %d bytes", path, cl, len(get.Body))
		}
		wantEdgeHeaders(t, "HEAD "+path, head)
	}
	if resp := rawDo(t, "HEAD", id.URL+"/api/sandboxes", "", nil); resp.Status != http.StatusUnauthorized || resp.Body != "" {
		t.Errorf("HEAD without a key: %d %q", resp.Status, resp.Body)
	}

	// Streams: the status line, then nothing; the stream's connection is released.
	u.sh(t, sb.ID, "printf 'abc' > /tmp/three")
	for _, tc := range []struct {
		path        string
		status      int
		contentType string
		header      http.Header
	}{
		{"/api/sandboxes/" + sb.ID + "/logs?follow=true", http.StatusOK, "text/event-stream", nil},
		{"/api/sandboxes/" + sb.ID + "/files?path=/tmp/three", http.StatusOK, "application/octet-stream", nil},
		{"/api/sandboxes/" + sb.ID + "/terminal", http.StatusUpgradeRequired, "application/json",
			http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}},
	} {
		h := auth.Clone()
		for k, v := range tc.header {
			h[k] = v
		}
		start := time.Now()
		resp := rawDo(t, "HEAD", id.URL+tc.path, "", h)
		if resp.Status != tc.status || resp.Body != "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) {
			t.Errorf("HEAD %s: %d %q %v", tc.path, resp.Status, resp.Body, resp.Header)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("HEAD %s took %s", tc.path, took)
		}
	}
	if resp := rawDo(t, "HEAD", id.URL+"/api/sandboxes/"+sb.ID+"/files?path=/tmp/three", "", auth); resp.Header.Get("Content-Length") != "3" {
		t.Errorf("HEAD of a file: Content-Length %q, want 3", resp.Header.Get("Content-Length"))
	}
	eventually(t, "HEAD streams to release their connections", 10*time.Second, func() bool { return u.connections(t, sb.ID) == 0 })

	// HEAD where GET is not allowed, and other methods on GET routes.
	resp := rawDo(t, "HEAD", id.URL+"/api/sandboxes/"+sb.ID+"/exec", "", auth)
	if resp.Status != http.StatusMethodNotAllowed || resp.Body != "" || resp.Header.Get("Allow") != "POST" {
		t.Errorf("HEAD on a POST route: %d %q Allow %q", resp.Status, resp.Body, resp.Header.Get("Allow"))
	}
	resp = rawDo(t, "DELETE", id.URL+"/health", "", nil)
	if msg := wantError(t, "DELETE /health", resp, http.StatusMethodNotAllowed, "method_not_allowed"); !strings.Contains(msg, "DELETE") {
		t.Errorf("message %q", msg)
	}
	if allow := resp.Header.Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow %q, want GET, HEAD", allow)
	}
}

// TestCredentialsAreUnambiguous: a request carrying two credentials is refused with 401
// ambiguous_credentials, whichever way they are sent; it was served as the first one.
func TestCredentialsAreUnambiguous(t *testing.T) {
	id := startIdentity(t, nil)
	key := id.createKey(t, id.session(t, "user_twice"), `{"name":"k"}`).Key
	other := id.createKey(t, id.session(t, "user_other"), `{"name":"k"}`).Key
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"two X-API-Key headers", http.Header{"X-Api-Key": {key, other}}},
		{"the same X-API-Key twice", http.Header{"X-Api-Key": {key, key}}},
		{"two Authorization headers", http.Header{"Authorization": {"Bearer " + key, "Bearer " + other}}},
		{"two keys in one X-API-Key", http.Header{"X-Api-Key": {key + ", " + other}}},
		{"two tokens in one Authorization", http.Header{"Authorization": {"Bearer " + key + "," + other}}},
		{"Authorization and X-API-Key", http.Header{"Authorization": {"Bearer " + key}, "X-Api-Key": {other}}},
	} {
		resp := rawDo(t, "GET", id.URL+"/test/keyed", "", tc.header)
		wantError(t, tc.name, resp, http.StatusUnauthorized, "ambiguous_credentials")
	}
	if resp := rawDo(t, "GET", id.URL+"/test/keyed", "", http.Header{"X-Api-Key": {key}}); resp.Status != http.StatusOK {
		t.Fatalf("one key: %d %s", resp.Status, resp.Body)
	}
}

// TestBodyErrorsSpeakJSON: every request body's type errors name the field and the JSON type it
// takes, never a Go type ("must be a handlers.createSandboxRequest", "must be a int").
func TestBodyErrorsSpeakJSON(t *testing.T) {
	id := startIdentity(t, nil)
	session := id.session(t, "user_bodies")
	u := newSandboxUser(t, id, "user_bodies")
	sandbox := "/api/sandboxes/00000000-0000-4000-8000-000000000001"
	for _, tc := range []struct {
		path, body, field, message string
		session                    bool
	}{
		{"/api/sandboxes", `[]`, "", "the request body must be a JSON object", false},
		{"/api/sandboxes", `null`, "", "the request body must be a JSON object", false},
		{"/api/sandboxes", `"x"`, "", "the request body must be a JSON object", false},
		{"/api/sandboxes", `{"image":5}`, "image", "image must be a string", false},
		{"/api/sandboxes", `{"command":"sleep 1"}`, "command", "command must be an array of strings", false},
		{"/api/sandboxes", `{"command":["sleep",1]}`, "command", "command must be an array of strings", false},
		{"/api/sandboxes", `{"env":["A=1"]}`, "env", "env must be an object of strings", false},
		{"/api/sandboxes", `{"metadata":{"team":1}}`, "metadata", "metadata must be an object of strings", false},
		{"/api/sandboxes", `{"timeout_seconds":"60"}`, "timeout_seconds", "timeout_seconds must be an integer", false},
		{"/api/sandboxes", `{"timeout_seconds":1.5}`, "timeout_seconds", "timeout_seconds must be an integer", false},
		{"/api/sandboxes", `{"timeout_seconds":1e100}`, "timeout_seconds", "timeout_seconds is out of range", false},
		{"/api/sandboxes", `{"cpu":"1"}`, "cpu", "cpu must be a number", false},
		{"/api/sandboxes", `{"memory_mb":"256"}`, "memory_mb", "memory_mb must be an integer", false},
		{"/api/sandboxes", `{"auto_extend":"yes"}`, "auto_extend", "auto_extend must be a boolean (true or false)", false},
		{sandbox + "/exec", `[["ls"]]`, "", "the request body must be a JSON object", false},
		{sandbox + "/exec", `{"cmd":"ls"}`, "cmd", "cmd must be an array of strings", false},
		{sandbox + "/exec", `{"cmd":["ls"],"env":{"A":true}}`, "env", "env must be an object of strings", false},
		{sandbox + "/exec", `{"cmd":["ls"],"cwd":["/"]}`, "cwd", "cwd must be a string", false},
		{sandbox + "/exec", `{"cmd":["ls"],"timeout_seconds":"5"}`, "timeout_seconds", "timeout_seconds must be an integer", false},
		{sandbox + "/exec", `{"cmd":["ls"],"stdin":5}`, "stdin", "stdin must be a string", false},
		{sandbox + "/timeout", `{"timeout_seconds":"60"}`, "timeout_seconds", "timeout_seconds must be an integer", false},
		{"/api/keys", `{"name":5}`, "name", "name must be a string", true},
		{"/api/keys", `{"name":"k","scopes":"sandboxes:read"}`, "scopes", "scopes must be an array of strings", true},
		{"/api/keys", `{"name":"k","expires_at":"tomorrow"}`, "expires_at", "expires_at must be an RFC 3339 time such as 2027-01-01T00:00:00Z", true},
		{"/api/keys", `{"name":"k","expires_at":5}`, "expires_at", "expires_at must be an RFC 3339 time such as 2027-01-01T00:00:00Z", true},
	} {
		what := tc.path + " " + tc.body
		token := u.key
		if tc.session {
			token = session
		}
		resp := id.Do(t, "POST", tc.path, tc.body, bearer(token))
		var b apierror.Body
		mustJSON(t, resp.Body, &b)
		wantCode := "validation_failed"
		if tc.field == "" {
			wantCode = "invalid_json"
		}
		if resp.Status != http.StatusBadRequest || b.Error.Code != wantCode || b.Error.Field != tc.field || b.Error.Message != tc.message {
			t.Errorf("%s: %d %s/%s %q, want 400 %s/%s %q", what, resp.Status, b.Error.Code, b.Error.Field, b.Error.Message, wantCode, tc.field, tc.message)
		}
	}
}

// TestConnectionCapIsAtomic: 40 terminals opened at once on a sandbox that holds 16 get exactly
// 16 sessions and 24 refusals (count then register admitted 17 or 18).
func TestConnectionCapIsAtomic(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_cap")
	sb := u.create(t, `{}`)
	const attempts, limit = 40, 16
	if id.cfg.Sandbox.MaxConnections != limit {
		t.Fatalf("sandbox.max_connections = %d, this test expects the default %d", id.cfg.Sandbox.MaxConnections, limit)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	query := "?" + url.Values{"cmd": {"sleep", "300"}}.Encode()
	var mu sync.Mutex
	var opened []*websocket.Conn
	statuses := map[int]int{}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range attempts {
		wg.Go(func() {
			<-start
			conn, resp, err := u.terminal(t, ctx, sb.ID, query)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				opened = append(opened, conn)
				statuses[http.StatusSwitchingProtocols]++
			case resp != nil:
				statuses[resp.StatusCode]++
			default:
				t.Errorf("dial: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if fmt.Sprint(statuses) != fmt.Sprint(map[int]int{101: limit, 429: attempts - limit}) {
		t.Fatalf("40 terminals at once: %v, want %d opened and %d refused with 429", statuses, limit, attempts-limit)
	}
	if n := u.connections(t, sb.ID); n != limit {
		t.Errorf("active_connections = %d, want %d", n, limit)
	}
	for _, conn := range opened {
		conn.Close(websocket.StatusNormalClosure, "done")
	}
	eventually(t, "every terminal to be released", 15*time.Second, func() bool { return u.connections(t, sb.ID) == 0 })
}

// TestSessionLifetimeIsBounded: a session token that claims to live ten years is refused with 401
// token_lifetime_too_long; clerk.max_token_lifetime sets the bound.
func TestSessionLifetimeIsBounded(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Clerk.MaxTokenLifetime = time.Hour })
	id.clerk.SetUser(clerkstub.User{ID: "user_long", Email: "long@example.com"})
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		status   int
	}{
		{"Clerk's 60 s", time.Minute, http.StatusOK},
		{"59 minutes", 59 * time.Minute, http.StatusOK},
		{"2 hours", 2 * time.Hour, http.StatusUnauthorized},
		{"10 years", 10 * 365 * 24 * time.Hour, http.StatusUnauthorized},
	} {
		token := id.clerk.Token(t, clerkstub.TokenOptions{Subject: "user_long", ExpiresIn: tc.lifetime})
		resp := id.Do(t, "GET", "/api/users/me", "", bearer(token))
		if resp.Status != tc.status {
			t.Fatalf("%s: %d %s", tc.name, resp.Status, resp.Body)
		}
		if tc.status == http.StatusUnauthorized {
			wantError(t, tc.name, resp, http.StatusUnauthorized, "token_lifetime_too_long")
		}
	}
}

// TestWebhookDuplicateIsAcknowledged: a copy of an applied delivery is 200 (svix would retry any
// other answer and mark the endpoint failing) and says it was not applied again; a copy with a
// bad signature or timestamp is still refused.
func TestWebhookDuplicateIsAcknowledged(t *testing.T) {
	id := startIdentity(t, nil)
	id.clerk.SetUser(clerkstub.User{ID: "user_dup", Email: "dup@example.com"})
	created := map[string]any{"type": "user.created", "data": json.RawMessage(id.clerk.UserJSON("user_dup"))}
	if resp := id.webhook(t, "msg_dup", created, 0, false); resp.Status != http.StatusOK || resp.Body != `{"status":"ok"}` {
		t.Fatalf("first delivery: %d %s", resp.Status, resp.Body)
	}
	for range 2 {
		resp := id.webhook(t, "msg_dup", created, 0, false)
		var body struct{ Status string }
		mustJSON(t, resp.Body, &body)
		if resp.Status != http.StatusOK || body.Status != "duplicate" {
			t.Fatalf("copy of an applied delivery: %d %s", resp.Status, resp.Body)
		}
	}
	wantError(t, "tampered copy", id.webhook(t, "msg_dup", created, 0, true), http.StatusUnauthorized, "invalid_signature")
	wantError(t, "stale copy", id.webhook(t, "msg_dup", created, -time.Hour, false), http.StatusUnauthorized, "stale_webhook")
}
