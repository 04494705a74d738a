package handlers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/metrics"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// received is one delivery a receiver took, its signature verified with svix's library.
type received struct {
	ID   string // webhook-id
	Type string
	Data map[string]any
}

// receiver is a loopback endpoint: it verifies every request with svix's library and answers
// with respond (n counts its requests from 1); a request that does not verify fails the test.
type receiver struct {
	*httptest.Server
	t       testing.TB
	respond func(w http.ResponseWriter, n int)

	mu     sync.Mutex
	secret string
	n      int
	got    []received
}

func newReceiver(t testing.TB, respond func(w http.ResponseWriter, n int)) *receiver {
	rc := &receiver{t: t, respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.n++
	n, secret := rc.n, rc.secret
	rc.mu.Unlock()
	wh, err := svix.NewWebhook(secret)
	if err == nil {
		err = wh.Verify(body, r.Header)
	}
	if err != nil {
		rc.t.Errorf("delivery %s does not verify with svix: %v", r.Header.Get("webhook-id"), err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var msg struct {
		Type      string         `json:"type"`
		Timestamp time.Time      `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || msg.Type == "" || msg.Timestamp.IsZero() || msg.Data == nil {
		rc.t.Errorf("delivery body is not a Standard Webhooks payload: %s (%v)", body, err)
	}
	if r.Header.Get("Content-Type") != "application/json" || r.Method != http.MethodPost {
		rc.t.Errorf("delivery is %s %s, want POST application/json", r.Method, r.Header.Get("Content-Type"))
	}
	rc.mu.Lock()
	rc.got = append(rc.got, received{ID: r.Header.Get("webhook-id"), Type: msg.Type, Data: msg.Data})
	rc.mu.Unlock()
	if rc.respond != nil {
		rc.respond(w, n)
	}
}

func (rc *receiver) setSecret(s string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.secret = s
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) requests() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.n
}

type webhook struct {
	ID             string     `json:"id"`
	URL            string     `json:"url"`
	Events         []string   `json:"events"`
	Description    string     `json:"description"`
	Enabled        bool       `json:"enabled"`
	DisabledAt     *time.Time `json:"disabled_at"`
	DisabledReason *string    `json:"disabled_reason"`
	FailingSince   *time.Time `json:"failing_since"`
	Secret         string     `json:"secret"`
}

type deliveryAttempt struct {
	StatusCode *int    `json:"status_code"`
	LatencyMS  int     `json:"latency_ms"`
	Error      *string `json:"error"`
}

type delivery struct {
	ID             string            `json:"id"`
	WebhookID      string            `json:"webhook_id"`
	EventID        string            `json:"event_id"`
	EventType      string            `json:"event_type"`
	Status         string            `json:"status"`
	AttemptCount   int               `json:"attempt_count"`
	NextAttemptAt  *time.Time        `json:"next_attempt_at"`
	LastStatusCode *int              `json:"last_status_code"`
	LastError      *string           `json:"last_error"`
	Attempts       []deliveryAttempt `json:"attempts"`
}

// webhookTo creates a webhook to rc for events and hands rc its secret.
func (u sandboxUser) webhookTo(t testing.TB, rc *receiver, events ...string) webhook {
	t.Helper()
	w := created[webhook](t, u, "/api/webhooks", fmt.Sprintf(`{"url":%q,"events":%s}`, rc.URL+"/hook", mustMarshal(t, events)))
	rc.setSecret(w.Secret)
	return w
}

func mustMarshal(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (u sandboxUser) deliveries(t testing.TB, webhookID, query string) []delivery {
	t.Helper()
	resp := u.do(t, "GET", "/api/webhooks/"+webhookID+"/deliveries?"+query, "")
	if resp.Status != http.StatusOK {
		t.Fatalf("GET deliveries = %d %s", resp.Status, resp.Body)
	}
	var p struct {
		Deliveries []delivery `json:"deliveries"`
	}
	mustJSON(t, resp.Body, &p)
	return p.Deliveries
}

// settled waits for a webhook's only delivery to leave pending and returns it.
func (u sandboxUser) settled(t testing.TB, webhookID string, within time.Duration) delivery {
	t.Helper()
	var d delivery
	eventually(t, "the delivery to settle", within, func() bool {
		ds := u.deliveries(t, webhookID, "")
		if len(ds) != 1 {
			return false
		}
		d = ds[0]
		return d.Status != "pending"
	})
	return d
}

// webhookConfig lets the tests reach their loopback receivers over http and retry quickly.
func webhookConfig(c *config.Config) {
	c.Webhooks.AllowHTTP = true
	c.Webhooks.AllowPrivateTargets = true
	c.Webhooks.PollInterval = 50 * time.Millisecond
	c.Webhooks.BackoffBase = 100 * time.Millisecond
	c.Webhooks.BackoffMax = 200 * time.Millisecond
}

// TestWebhookDeliversLifecycleEvents: a user's endpoint receives their sandboxes' events, each
// signed so svix's library verifies it, with the event log's id as webhook-id and the event's
// data (a failed sandbox's end reason); Redis going away changes nothing.
func TestWebhookDeliversLifecycleEvents(t *testing.T) {
	redisServer := testenv.StartRedis(t)
	var srv *metrics.Server
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		webhookConfig(c)
		c.Redis.URL = config.Secret(redisServer.URL())
	}, fx.Populate(&srv))
	u := newSandboxUser(t, id, "user_webhooks")
	rc := newReceiver(t, nil)
	w := u.webhookTo(t, rc, "sandbox.created", "sandbox.running", "sandbox.stopped", "sandbox.failed")
	if !strings.HasPrefix(w.Secret, "whsec_") || !w.Enabled || w.URL != rc.URL+"/hook" {
		t.Fatalf("created webhook = %+v, want its whsec_ secret once, enabled", w)
	}
	if got := u.do(t, "GET", "/api/webhooks/"+w.ID, ""); got.Status != http.StatusOK || strings.Contains(got.Body, w.Secret) || strings.Contains(got.Body, `"secret"`) {
		t.Fatalf("GET the webhook = %d %s, want it without its secret", got.Status, got.Body)
	}

	redisServer.Stop() // Postgres holds the outbox: deliveries do not need Redis
	sb := u.create(t, `{"metadata":{"job":"hooks"}}`)
	if resp := u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, ""); resp.Status != http.StatusNoContent {
		t.Fatalf("delete = %d %s", resp.Status, resp.Body)
	}
	exits := u.create(t, `{"command":["sh","-c","sleep 1; exit 3"]}`)

	eventually(t, "six deliveries", 30*time.Second, func() bool { return len(rc.received()) >= 6 })
	time.Sleep(300 * time.Millisecond) // nothing more should come
	got := rc.received()
	redisServer.Start()
	log := u.eventLog(t, "limit=100").Events
	logged := map[string]string{}
	for _, e := range log {
		logged[e.ID] = e.Type
	}
	byType := map[string][]received{}
	for _, r := range got {
		if logged[r.ID] != r.Type || r.Data["event_id"] != r.ID {
			t.Errorf("delivery %s %s is not the logged event of that id (log: %v)", r.ID, r.Type, logged)
		}
		byType[r.Type] = append(byType[r.Type], r)
	}
	want := map[string][]string{"sandbox.created": {sb.ID, exits.ID}, "sandbox.running": {sb.ID, exits.ID}, "sandbox.stopped": {sb.ID}, "sandbox.failed": {exits.ID}}
	for typ, ids := range want {
		if len(byType[typ]) != len(ids) {
			t.Errorf("%s delivered %d times, want %d: %+v", typ, len(byType[typ]), len(ids), byType[typ])
		}
	}
	if len(got) != 6 {
		t.Errorf("%d deliveries, want 6 (one per event): %+v", len(got), got)
	}
	for _, r := range byType["sandbox.stopped"] {
		if r.Data["sandbox_id"] != sb.ID || r.Data["status"] != "stopped" || r.Data["image"] != sb.Image || r.Data["actor"] == "" {
			t.Errorf("sandbox.stopped data = %v", r.Data)
		}
	}
	for _, r := range byType["sandbox.failed"] {
		if r.Data["sandbox_id"] != exits.ID || r.Data["end_reason"] != "process_exited" || r.Data["exit_code"] != float64(3) {
			t.Errorf("sandbox.failed data = %v, want end_reason process_exited, exit_code 3", r.Data)
		}
	}
	for _, r := range byType["sandbox.created"] {
		if md, _ := r.Data["metadata"].(map[string]any); r.Data["sandbox_id"] == sb.ID && md["job"] != "hooks" {
			t.Errorf("sandbox.created data = %v, want the metadata", r.Data)
		}
	}

	// The deliveries list each with its attempt.
	ds := u.deliveries(t, w.ID, "limit=100")
	if len(ds) != 6 {
		t.Fatalf("%d deliveries listed, want 6", len(ds))
	}
	for _, d := range ds {
		if d.Status != "succeeded" || d.AttemptCount != 1 || len(d.Attempts) != 1 || d.Attempts[0].StatusCode == nil ||
			*d.Attempts[0].StatusCode != 200 || d.Attempts[0].Error != nil || d.NextAttemptAt != nil || logged[d.EventID] != d.EventType {
			t.Errorf("delivery = %+v, want succeeded at the first attempt with 200", d)
		}
	}
	if sucs, _ := sample(scrape(t, srv)["insien_webhook_deliveries_total"], map[string]string{"outcome": "succeeded"}); sucs < 6 {
		t.Errorf("insien_webhook_deliveries_total{outcome=succeeded} = %v, want at least 6", sucs)
	}

	// An unsubscribed type is not sent: a key's creation.
	newSandboxUser(t, id, "user_webhooks") // the same user, another key
	time.Sleep(300 * time.Millisecond)
	if n := len(rc.received()); n != 6 {
		t.Errorf("%d deliveries after an unsubscribed event, want 6", n)
	}
}

// TestWebhookFailuresAreRecorded: a receiver that answers 500 and then 200 is retried; a 3xx is
// recorded, not followed; one that hangs is cut at the timeout; one that streams 10 MB is read
// for 64 KiB only; an endpoint failing for disable_after is disabled with the reason. Each
// attempt is listed with its status code, latency and error, and a manual retry resends the
// same webhook-id.
func TestWebhookFailuresAreRecorded(t *testing.T) {
	var srv *metrics.Server
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		webhookConfig(c)
		c.Webhooks.Timeout = time.Second
		c.Webhooks.MaxAttemptWindow = 3 * time.Second
		c.Webhooks.DisableAfter = 1500 * time.Millisecond
	}, fx.Populate(&srv))
	u := newSandboxUser(t, id, "user_webhook_failures")

	flaky := newReceiver(t, func(w http.ResponseWriter, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	target := newReceiver(t, nil)
	redirect := newReceiver(t, func(w http.ResponseWriter, _ int) {
		w.Header().Set("Location", target.URL+"/hook")
		w.WriteHeader(http.StatusFound)
	})
	hang := newReceiver(t, func(http.ResponseWriter, int) { time.Sleep(3 * time.Second) })
	var written atomic.Int64
	huge := newReceiver(t, func(w http.ResponseWriter, _ int) { // 10 MB, slower than the timeout
		w.WriteHeader(http.StatusOK)
		chunk := make([]byte, 64<<10)
		for range 160 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			written.Add(int64(len(chunk)))
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	})
	broken := newReceiver(t, func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusInternalServerError) })

	hooks := map[string]webhook{}
	for name, rc := range map[string]*receiver{"flaky": flaky, "redirect": redirect, "hang": hang, "huge": huge, "broken": broken} {
		hooks[name] = u.webhookTo(t, rc, "sandbox.created")
		if resp := u.do(t, "POST", "/api/webhooks/"+hooks[name].ID+"/test", ""); resp.Status != http.StatusAccepted {
			t.Fatalf("test %s = %d %s", name, resp.Status, resp.Body)
		}
	}

	d := u.settled(t, hooks["flaky"].ID, 20*time.Second)
	if d.Status != "succeeded" || d.AttemptCount != 2 || len(d.Attempts) != 2 || *d.Attempts[0].StatusCode != 500 ||
		d.Attempts[0].Error == nil || !strings.Contains(*d.Attempts[0].Error, "500") || *d.Attempts[1].StatusCode != 200 || d.Attempts[1].Error != nil {
		t.Errorf("500 then 200: %+v, want succeeded at the second attempt, the first recorded with its 500", d)
	}
	if got := flaky.received(); len(got) != 2 || got[0].ID != got[1].ID || got[0].ID != d.EventID || got[0].Type != "webhook.test" {
		t.Errorf("flaky receiver got %+v, want the test event twice under one webhook-id", got)
	}

	d = u.settled(t, hooks["redirect"].ID, 20*time.Second)
	if d.Status != "failed" || len(d.Attempts) == 0 || *d.Attempts[0].StatusCode != http.StatusFound || !strings.Contains(*d.Attempts[0].Error, "redirect") {
		t.Errorf("3xx: %+v, want failed attempts recording the 302 as a redirect not followed", d)
	}
	if target.requests() != 0 {
		t.Errorf("the redirect was followed: its target got %d requests", target.requests())
	}

	d = u.settled(t, hooks["hang"].ID, 20*time.Second)
	if a := d.Attempts[0]; a.StatusCode != nil || a.Error == nil || !strings.Contains(*a.Error, "no answer within 1s") || a.LatencyMS < 900 || a.LatencyMS > 3000 {
		t.Errorf("hang: first attempt %+v, want no answer within 1s after about 1000 ms", a)
	}

	d = u.settled(t, hooks["huge"].ID, 20*time.Second)
	if d.Status != "succeeded" || d.AttemptCount != 1 || d.Attempts[0].LatencyMS > 900 {
		t.Errorf("10 MB answer: %+v, want succeeded at once (64 KiB read, the rest not waited for)", d)
	}
	if n := written.Load(); n >= 10<<20 {
		t.Errorf("the receiver wrote all of its %d bytes", n)
	}

	// Failing for longer than disable_after: disabled, with the reason; its deliveries failed.
	var w webhook
	eventually(t, "the failing endpoint to be disabled", 20*time.Second, func() bool {
		mustJSON(t, u.do(t, "GET", "/api/webhooks/"+hooks["broken"].ID, "").Body, &w)
		return !w.Enabled
	})
	if w.DisabledAt == nil || w.DisabledReason == nil || !strings.Contains(*w.DisabledReason, "answered 500") || w.FailingSince == nil {
		t.Errorf("disabled endpoint = %+v, want the reason naming the 500", w)
	}
	if d := u.settled(t, hooks["broken"].ID, 10*time.Second); d.Status != "failed" {
		t.Errorf("a disabled endpoint's delivery = %+v, want failed", d)
	}
	wantError(t, "test a disabled endpoint", u.do(t, "POST", "/api/webhooks/"+w.ID+"/test", ""), http.StatusConflict, "webhook_disabled")
	resp := u.do(t, "PATCH", "/api/webhooks/"+w.ID, `{"enabled":true,"description":"fixed"}`)
	mustJSON(t, resp.Body, &w)
	if resp.Status != http.StatusOK || !w.Enabled || w.DisabledReason != nil || w.FailingSince != nil || w.Description != "fixed" {
		t.Errorf("re-enable = %d %s", resp.Status, resp.Body)
	}

	// A manual retry resends a delivery, under the same webhook-id, with a fresh window.
	ok := u.deliveries(t, hooks["flaky"].ID, "status=succeeded")[0]
	resp = u.do(t, "POST", "/api/webhooks/"+hooks["flaky"].ID+"/deliveries/"+ok.ID+"/retry", "")
	var retried delivery
	mustJSON(t, resp.Body, &retried)
	if resp.Status != http.StatusAccepted || retried.Status != "pending" || retried.NextAttemptAt == nil {
		t.Fatalf("retry = %d %s, want 202 pending", resp.Status, resp.Body)
	}
	eventually(t, "the retried delivery", 10*time.Second, func() bool { return len(flaky.received()) == 3 })
	if got := flaky.received(); got[2].ID != ok.EventID {
		t.Errorf("retry sent webhook-id %s, want %s", got[2].ID, ok.EventID)
	}
	if d := u.settled(t, hooks["flaky"].ID, 10*time.Second); d.Status != "succeeded" || d.AttemptCount != 3 {
		t.Errorf("after the retry: %+v", d)
	}
	wantError(t, "retry an unknown delivery", u.do(t, "POST", "/api/webhooks/"+hooks["flaky"].ID+"/deliveries/"+hooks["flaky"].ID+"/retry", ""), http.StatusNotFound, "not_found")

	families := scrape(t, srv)
	for _, outcome := range []string{"succeeded", "failed_attempt", "failed"} {
		if v, _ := sample(families["insien_webhook_deliveries_total"], map[string]string{"outcome": outcome}); v < 1 {
			t.Errorf("insien_webhook_deliveries_total{outcome=%q} = %v, want at least 1", outcome, v)
		}
	}
}

// TestWebhookEndpointsAreGuarded: in production only https endpoints are accepted, a literal
// loopback, private or metadata address is refused at once, a name resolving to one is refused
// when dialed (and recorded); unknown event types are 400, the per-user limit 429, another
// user's webhook 404; the Clerk receiver at /api/webhooks/clerk still answers beside them.
func TestWebhookEndpointsAreGuarded(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.App.Env = "production"
		c.Webhooks.PollInterval = 50 * time.Millisecond
		c.Webhooks.MaxPerUser = 2
	})
	u := newSandboxUser(t, id, "user_webhook_guard")
	rc := newReceiver(t, nil)
	port := rc.URL[strings.LastIndex(rc.URL, ":")+1:]

	for _, tt := range []struct{ body, field string }{
		{`{"url":"http://example.com/hook","events":["sandbox.created"]}`, "url"},
		{`{"url":"https://127.0.0.1/hook","events":["sandbox.created"]}`, "url"},
		{`{"url":"https://169.254.169.254/latest/meta-data","events":["sandbox.created"]}`, "url"},
		{`{"url":"https://10.0.0.5/hook","events":["sandbox.created"]}`, "url"},
		{`{"url":"https://[::1]:8443/hook","events":["sandbox.created"]}`, "url"},
		{`{"url":"https://[::ffff:192.168.0.1]/hook","events":["sandbox.created"]}`, "url"},
		{`{"url":"ftp://example.com/hook","events":["sandbox.created"]}`, "url"},
		{`{"url":"not a url","events":["sandbox.created"]}`, "url"},
		{`{"events":["sandbox.created"]}`, "url"},
		{`{"url":"https://example.com/hook","events":["sandbox.exploded"]}`, "events"},
		{`{"url":"https://example.com/hook","events":[]}`, "events"},
		{`{"url":"https://example.com/hook","events":["sandbox.created"],"secret":"mine"}`, "secret"},
	} {
		resp := u.do(t, "POST", "/api/webhooks", tt.body)
		wantError(t, tt.body, resp, http.StatusBadRequest, "validation_failed")
		var b struct {
			Error struct{ Field string } `json:"error"`
		}
		mustJSON(t, resp.Body, &b)
		if b.Error.Field != tt.field {
			t.Errorf("%s: field %q, want %q", tt.body, b.Error.Field, tt.field)
		}
	}

	// A name is checked where it matters: at the dial, against the address it resolved to.
	named := created[webhook](t, u, "/api/webhooks", `{"url":"https://localhost:`+port+`/hook","events":["sandbox.created"],"description":"resolves to loopback"}`)
	if resp := u.do(t, "POST", "/api/webhooks/"+named.ID+"/test", ""); resp.Status != http.StatusAccepted {
		t.Fatalf("test = %d %s", resp.Status, resp.Body)
	}
	var d delivery
	eventually(t, "the refused attempt", 10*time.Second, func() bool {
		d = u.deliveries(t, named.ID, "")[0]
		return len(d.Attempts) > 0
	})
	if a := d.Attempts[0]; a.StatusCode != nil || a.Error == nil || !strings.Contains(*a.Error, "refused to connect to") || !strings.Contains(*a.Error, "loopback") {
		t.Errorf("attempt to a name resolving to loopback = %+v, want refused at the dial", a)
	}
	if rc.requests() != 0 {
		t.Errorf("the loopback receiver was reached %d times", rc.requests())
	}

	second := created[webhook](t, u, "/api/webhooks", `{"url":"https://example.com/hook","events":["api_key.created","sandbox.failed","api_key.created"]}`)
	if len(second.Events) != 2 {
		t.Errorf("events = %v, want each type once", second.Events)
	}
	wantError(t, "a third webhook", u.do(t, "POST", "/api/webhooks", `{"url":"https://example.com/3","events":["sandbox.created"]}`), http.StatusTooManyRequests, "quota_exceeded")
	resp := u.do(t, "GET", "/api/webhooks", "")
	var list struct {
		Webhooks []webhook `json:"webhooks"`
	}
	mustJSON(t, resp.Body, &list)
	if len(list.Webhooks) != 2 || list.Webhooks[0].ID != named.ID || strings.Contains(resp.Body, `"secret"`) {
		t.Errorf("list = %s, want both, oldest first, without secrets", resp.Body)
	}
	wantError(t, "PATCH to a metadata address", u.do(t, "PATCH", "/api/webhooks/"+second.ID, `{"url":"https://169.254.169.254/"}`), http.StatusBadRequest, "validation_failed")
	wantError(t, "PATCH to an unknown type", u.do(t, "PATCH", "/api/webhooks/"+second.ID, `{"events":["nope"]}`), http.StatusBadRequest, "validation_failed")

	// Another user sees none of it.
	other := newSandboxUser(t, id, "user_webhook_guard_other")
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/webhooks/" + named.ID, ""},
		{"PATCH", "/api/webhooks/" + named.ID, `{"description":"mine"}`},
		{"DELETE", "/api/webhooks/" + named.ID, ""},
		{"POST", "/api/webhooks/" + named.ID + "/test", ""},
		{"GET", "/api/webhooks/" + named.ID + "/deliveries", ""},
		{"POST", "/api/webhooks/" + named.ID + "/deliveries/" + d.ID + "/retry", ""},
		{"GET", "/api/webhooks/not-a-uuid", ""},
	} {
		wantError(t, "another user's "+r.method+" "+r.path, other.do(t, r.method, r.path, r.body), http.StatusNotFound, "not_found")
	}
	if resp := other.do(t, "GET", "/api/webhooks", ""); !strings.Contains(resp.Body, `"webhooks":[]`) {
		t.Errorf("another user's list = %s", resp.Body)
	}

	// The Clerk receiver is still the one answering its path.
	wantError(t, "POST /api/webhooks/clerk unsigned", id.Do(t, "POST", "/api/webhooks/clerk", `{}`, nil), http.StatusBadRequest, "missing_signature_headers")

	if resp := u.do(t, "DELETE", "/api/webhooks/"+named.ID, ""); resp.Status != http.StatusNoContent {
		t.Errorf("delete = %d %s", resp.Status, resp.Body)
	}
	wantError(t, "GET a deleted webhook", u.do(t, "GET", "/api/webhooks/"+named.ID, ""), http.StatusNotFound, "not_found")
}

// TestWebhookDeliveriesSurviveARestart: events whose deliveries were still in the outbox when
// the service stopped are delivered after it starts again, by two replicas at once, each exactly
// once under its event's id.
func TestWebhookDeliveriesSurviveARestart(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		webhookConfig(c)
		c.Webhooks.PollInterval = time.Minute // this first replica stops before it ever polls
	})
	u := newSandboxUser(t, id, "user_webhook_restart")
	rc := newReceiver(t, nil)
	u.webhookTo(t, rc, "sandbox.created", "sandbox.running", "sandbox.stopped", "api_key.created")
	sb := u.create(t, `{}`)
	if resp := u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, ""); resp.Status != http.StatusNoContent {
		t.Fatalf("delete = %d %s", resp.Status, resp.Body)
	}
	newSandboxUser(t, id, "user_webhook_restart") // api_key.created
	id.Stop(t)
	if n := rc.requests(); n != 0 {
		t.Fatalf("%d deliveries before the restart, want none yet", n)
	}

	cfg := *id.cfg
	cfg.Webhooks.PollInterval = 20 * time.Millisecond
	for range 2 {
		startIdentityWith(t, &cfg, id.clerk, id.secret)
	}
	eventually(t, "four deliveries after the restart", 20*time.Second, func() bool { return rc.requests() >= 4 })
	time.Sleep(500 * time.Millisecond) // room for a duplicate to show up
	seen := map[string]string{}
	for _, r := range rc.received() {
		if seen[r.ID] != "" {
			t.Errorf("event %s (%s) delivered twice", r.ID, r.Type)
		}
		seen[r.ID] = r.Type
	}
	if len(seen) != 4 || rc.requests() != 4 {
		t.Errorf("delivered %v in %d requests, want sandbox.created, running, stopped and api_key.created once each", seen, rc.requests())
	}
}
