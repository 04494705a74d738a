package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"go.uber.org/fx"

	eventlog "github.com/insien/orchestrator/internal/events"
	"github.com/insien/orchestrator/internal/platform/apierror"
)

type event struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	CreatedAt time.Time      `json:"created_at"`
	Actor     string         `json:"actor"`
	RequestID *string        `json:"request_id"`
	SandboxID *string        `json:"sandbox_id"`
	APIKeyID  *string        `json:"api_key_id"`
	Data      map[string]any `json:"data"`
}

type eventPage struct {
	Events     []event `json:"events"`
	NextCursor *string `json:"next_cursor"`
}

func (u sandboxUser) eventLog(t testing.TB, query string) eventPage {
	t.Helper()
	resp := u.do(t, "GET", "/api/events?"+query, "")
	if resp.Status != http.StatusOK {
		t.Fatalf("GET /api/events?%s = %d %s", query, resp.Status, resp.Body)
	}
	var p eventPage
	mustJSON(t, resp.Body, &p)
	return p
}

// TestEventLog: every change to a user's sandboxes and keys is in their event log, with who made
// it (the key, the session's user, or the system) and the request that did, newest first; the
// log filters, pages, refuses bad queries, shows no one else's events and forgets old ones.
func TestEventLog(t *testing.T) {
	var svc *eventlog.Service
	var db *bun.DB
	id := startIdentity(t, nil, fx.Populate(&svc, &db))
	session := id.session(t, "user_events")
	key := id.createKey(t, session, `{"name":"events"}`)
	u := sandboxUser{id: id, key: key.Key}
	other := newSandboxUser(t, id, "user_events_other")
	var me struct {
		ID string `json:"id"`
	}
	mustJSON(t, id.Do(t, "GET", "/api/users/me", "", bearer(session)).Body, &me)

	withID := func(rid string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + key.Key, "X-Request-ID": rid}
	}
	resp := id.Do(t, "POST", "/api/sandboxes", `{"metadata":{"job":"events"}}`, withID("req-create"))
	if resp.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", resp.Status, resp.Body)
	}
	var sb sandbox
	mustJSON(t, resp.Body, &sb)
	for _, step := range []struct{ method, path, rid string }{
		{"POST", "/api/sandboxes/" + sb.ID + "/pause", "req-pause"},
		{"POST", "/api/sandboxes/" + sb.ID + "/resume", "req-resume"},
		{"DELETE", "/api/sandboxes/" + sb.ID, "req-delete"},
	} {
		if resp := id.Do(t, step.method, step.path, "", withID(step.rid)); resp.Status >= 300 {
			t.Fatalf("%s %s = %d %s", step.method, step.path, resp.Status, resp.Body)
		}
	}
	revoked := id.createKey(t, session, `{"name":"to revoke"}`)
	if resp := id.Do(t, "DELETE", "/api/keys/"+revoked.ID, "", map[string]string{"Authorization": "Bearer " + session, "X-Request-ID": "req-revoke"}); resp.Status != http.StatusNoContent {
		t.Fatalf("revoke = %d %s", resp.Status, resp.Body)
	}
	exits := u.create(t, `{"command":["sh","-c","sleep 1; exit 3"]}`)

	keyActor, userActor := "key:"+key.ID, "user:"+me.ID
	var failed eventPage
	eventually(t, "the sandbox whose command exits to be failed in the log", 30*time.Second, func() bool {
		failed = u.eventLog(t, "type=sandbox.failed&sandbox_id="+exits.ID)
		return len(failed.Events) == 1
	})
	if e := failed.Events[0]; e.Actor != "system" || e.RequestID != nil || e.Data["end_reason"] != "process_exited" || e.Data["exit_code"] != float64(3) || e.Data["status"] != "failed" {
		t.Errorf("sandbox.failed = %+v, want the system's, end_reason process_exited, exit_code 3", e)
	}

	// One sandbox's life, newest first.
	life := u.eventLog(t, "sandbox_id="+sb.ID).Events
	want := []struct{ typ, actor, rid, status, previous string }{
		{"sandbox.stopped", keyActor, "req-delete", "stopped", "stopping"},
		{"sandbox.resumed", keyActor, "req-resume", "running", "paused"},
		{"sandbox.paused", keyActor, "req-pause", "paused", "running"},
		{"sandbox.running", keyActor, "req-create", "running", "pending"},
		{"sandbox.created", keyActor, "req-create", "pending", ""},
	}
	if len(life) != len(want) {
		t.Fatalf("the sandbox's events: %+v, want %d", life, len(want))
	}
	for i, w := range want {
		e := life[i]
		prev, _ := e.Data["previous_status"].(string)
		if e.Type != w.typ || e.Actor != w.actor || e.RequestID == nil || *e.RequestID != w.rid || e.SandboxID == nil || *e.SandboxID != sb.ID ||
			e.Data["status"] != w.status || prev != w.previous || e.Data["image"] != sb.Image {
			t.Errorf("event %d = %+v (request %v), want %s by %s in %s (%s → %s)", i, e, e.RequestID, w.typ, w.actor, w.rid, w.previous, w.status)
		}
		if i > 0 && e.CreatedAt.After(life[i-1].CreatedAt) {
			t.Errorf("event %d is newer than the one before it", i)
		}
	}
	if md, _ := life[4].Data["metadata"].(map[string]any); md["job"] != "events" {
		t.Errorf("sandbox.created data = %v, want the metadata", life[4].Data)
	}

	keyEvents := u.eventLog(t, "type=api_key.revoked").Events
	if len(keyEvents) != 1 || keyEvents[0].Actor != userActor || keyEvents[0].APIKeyID == nil || *keyEvents[0].APIKeyID != revoked.ID ||
		keyEvents[0].RequestID == nil || *keyEvents[0].RequestID != "req-revoke" || keyEvents[0].Data["name"] != "to revoke" {
		t.Errorf("api_key.revoked = %+v, want the revoked key by %s in req-revoke", keyEvents, userActor)
	}
	if created := u.eventLog(t, "type=api_key.created").Events; len(created) != 2 || created[0].Actor != userActor {
		t.Errorf("api_key.created = %+v, want both keys, by %s", created, userActor)
	}

	// Pages: two at a time, no event twice, the same set as one page.
	all := u.eventLog(t, "limit=100").Events
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		q := url.Values{"limit": {"2"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		p := u.eventLog(t, q.Encode())
		for _, e := range p.Events {
			if seen[e.ID] {
				t.Fatalf("event %s on two pages", e.ID)
			}
			seen[e.ID] = true
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	if len(seen) != len(all) {
		t.Errorf("paging saw %d events, one page of 100 has %d", len(seen), len(all))
	}

	// Tenancy: another user sees none of it, even asking by the sandbox's id.
	if p := other.eventLog(t, "sandbox_id="+sb.ID); len(p.Events) != 0 {
		t.Errorf("another user sees %d events of this sandbox", len(p.Events))
	}

	for _, tt := range []struct{ query, field string }{
		{"type=sandbox.exploded", "type"},
		{"sandbox_id=not-a-uuid", "sandbox_id"},
		{"limit=0", "limit"},
		{"limit=many", "limit"},
		{"cursor=garbage", "cursor"},
	} {
		resp := u.do(t, "GET", "/api/events?"+tt.query, "")
		wantError(t, "GET /api/events?"+tt.query, resp, http.StatusBadRequest, "validation_failed")
		var body apierror.Body
		mustJSON(t, resp.Body, &body)
		if body.Error.Field != tt.field {
			t.Errorf("GET /api/events?%s names field %q, want %q", tt.query, body.Error.Field, tt.field)
		}
	}

	// Retention: an event older than events.retention goes at the next sweep, a recent one stays.
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "UPDATE events SET created_at = now() - interval '31 days' WHERE id = ?", life[4].ID); err != nil {
		t.Fatal(err)
	}
	if n, err := svc.Sweep(ctx); err != nil || n < 1 {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	if after := u.eventLog(t, "sandbox_id="+sb.ID).Events; len(after) != len(want)-1 || after[0].Type != "sandbox.stopped" {
		t.Errorf("after the sweep: %+v, want all but sandbox.created", after)
	}
	// A webhook delivery that ended before the retention goes too; a pending one stays.
	var deliveries int
	if _, err := db.ExecContext(ctx, `INSERT INTO webhook_endpoints (user_id, url, events, secret)
		SELECT user_id, 'https://example.test/hook', '{sandbox.created}', '\x00' FROM events WHERE id = ?`, life[3].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO webhook_deliveries (endpoint_id, user_id, event_id, event_type, payload, status, updated_at)
		SELECT e.id, e.user_id, gen_random_uuid(), 'sandbox.created', '{}', s.status, now() - interval '31 days'
		FROM webhook_endpoints e, (VALUES ('succeeded'), ('failed'), ('pending')) AS s (status)`); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'").Scan(&deliveries); err != nil || deliveries != 1 {
		t.Errorf("pending deliveries after the sweep: %d (%v), want the one", deliveries, err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM webhook_deliveries").Scan(&deliveries); err != nil || deliveries != 1 {
		t.Errorf("deliveries after the sweep: %d (%v), want only the pending one", deliveries, err)
	}
}
