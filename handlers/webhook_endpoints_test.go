package handlers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
