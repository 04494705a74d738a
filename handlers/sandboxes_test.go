package handlers_test

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

type sandbox struct {
	ID             string            `json:"id"`
	Status         string            `json:"status"`
	EndReason      *string           `json:"end_reason"`
	ExitCode       *int              `json:"exit_code"`
	Image          string            `json:"image"`
	Metadata       map[string]string `json:"metadata"`
	EnvNames       []string          `json:"env_names"`
	CPU            float64           `json:"cpu"`
	MemoryMB       int64             `json:"memory_mb"`
	TimeoutSeconds int               `json:"timeout_seconds"`
	CreatedAt      time.Time         `json:"created_at"`
	StartedAt      *time.Time        `json:"started_at"`
	ExpiresAt      time.Time         `json:"expires_at"`
	EndedAt        *time.Time        `json:"ended_at"`
	PausedAt       *time.Time        `json:"paused_at"`
	Start          string            `json:"start"`
}

// sandboxUser is a user with a full-scope API key on a running service.
type sandboxUser struct {
	id  *identity
	key string
}

func newSandboxUser(t testing.TB, id *identity, clerkID string) sandboxUser {
	t.Helper()
	k := id.createKey(t, id.session(t, clerkID), `{"name":"sandboxes"}`)
	return sandboxUser{id: id, key: k.Key}
}

func (u sandboxUser) do(t testing.TB, method, path, body string) testenv.Response {
	t.Helper()
	return u.id.Do(t, method, path, body, bearer(u.key))
}

func (u sandboxUser) create(t testing.TB, body string) sandbox {
	t.Helper()
	return created[sandbox](t, u, "/api/sandboxes", body)
}

// created POSTs body to path as u, wants 201 and returns what was created.
func created[T any](t testing.TB, u sandboxUser, path, body string) T {
	t.Helper()
	resp := u.do(t, "POST", path, body)
	if resp.Status != http.StatusCreated {
		t.Fatalf("POST %s %s = %d %s", path, body, resp.Status, resp.Body)
	}
	var v T
	mustJSON(t, resp.Body, &v)
	return v
}

func (u sandboxUser) get(t *testing.T, id string) sandbox {
	t.Helper()
	resp := u.do(t, "GET", "/api/sandboxes/"+id, "")
	if resp.Status != http.StatusOK {
		t.Fatalf("GET sandbox %s = %d %s", id, resp.Status, resp.Body)
	}
	var sb sandbox
	mustJSON(t, resp.Body, &sb)
	return sb
}

// containers lists the service's workloads (containers or Pods) straight from the runtime.
func containers(t testing.TB, id *identity) []string {
	t.Helper()
	return testenv.Workloads(t, id.cfg)
}

func eventually(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, what, within, cond)
}

func TestSandboxLifecycle(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_life")

	sb := u.create(t, `{"env":{"API_TOKEN":"hunter2-secret"},"metadata":{"team":"ml"},"cpu":0.5,"memory_mb":128,"timeout_seconds":600}`)
	if sb.Status != "running" || sb.StartedAt == nil || sb.CPU != 0.5 || sb.MemoryMB != 128 || sb.Image != "insien/sandbox:busybox" ||
		sb.Metadata["team"] != "ml" || fmt.Sprint(sb.EnvNames) != "[API_TOKEN]" || sb.TimeoutSeconds != 600 {
		t.Fatalf("created %+v", sb)
	}
	if d := time.Until(sb.ExpiresAt); d < 590*time.Second || d > 601*time.Second {
		t.Errorf("expires in %v, want about 600s", d)
	}

	t.Run("the container is hardened and isolated", func(t *testing.T) {
		testenv.DockerOnly(t) // the Kubernetes driver's TestPodHardening reads its Pods back
		res, err := testenv.Docker(t).ContainerInspect(t.Context(), "sbx-"+sb.ID, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hc, cfg := res.Container.HostConfig, res.Container.Config
		checks := []struct {
			name      string
			got, want any
		}{
			{"running", res.Container.State.Running, true},
			{"Privileged", hc.Privileged, false},
			{"CapDrop", hc.CapDrop, []string{"ALL"}},
			{"no-new-privileges", slices.Contains(hc.SecurityOpt, "no-new-privileges=true"), true},
			{"PidsLimit", *hc.PidsLimit, id.cfg.Sandbox.PidsLimit},
			{"Memory", hc.Memory, int64(128 << 20)},
			{"MemorySwap equals Memory", hc.MemorySwap, int64(128 << 20)},
			{"NanoCPUs", hc.NanoCPUs, int64(500_000_000)},
			{"NetworkMode", string(hc.NetworkMode), "none"},
			{"Init", *hc.Init, true},
			{"networks attached", len(res.Container.NetworkSettings.Networks) <= 1, true},
			{"label sandbox", cfg.Labels["dev.insien.orchestrator.sandbox"], sb.ID},
			{"label cluster", cfg.Labels["dev.insien.orchestrator.cluster"], id.cfg.Runtime.Cluster},
			{"label instance", cfg.Labels["dev.insien.orchestrator.instance"], id.cfg.App.Instance},
			{"env reaches the container", slices.Contains(cfg.Env, "API_TOKEN=hunter2-secret"), true},
		}
		for _, c := range checks {
			if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
				t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
			}
		}
		if ep, ok := res.Container.NetworkSettings.Networks["none"]; len(res.Container.NetworkSettings.Networks) > 0 && (!ok || ep.IPAddress.IsValid()) {
			t.Errorf("networks: %v", res.Container.NetworkSettings.Networks)
		}
	})

	t.Run("env values are encrypted at rest and never returned", func(t *testing.T) {
		var sealed []byte
		if err := testenv.OpenSQL(t, id.cfg.Database.URL.Reveal()).QueryRow(
			"SELECT env_encrypted FROM sandboxes WHERE id = $1", sb.ID).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if len(sealed) == 0 || strings.Contains(string(sealed), "hunter2") {
			t.Fatalf("env stored as %q", sealed)
		}
		for _, path := range []string{"/api/sandboxes/" + sb.ID, "/api/sandboxes"} {
			if body := u.do(t, "GET", path, "").Body; strings.Contains(body, "hunter2") {
				t.Errorf("%s leaks an env value: %s", path, body)
			}
		}
	})

	if got := u.get(t, sb.ID); got.ID != sb.ID || got.Status != "running" {
		t.Fatalf("get: %+v", got)
	}
	for i := range 2 {
		if resp := u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, ""); resp.Status != http.StatusNoContent {
			t.Fatalf("delete #%d: %d %s", i+1, resp.Status, resp.Body)
		}
	}
	ended := u.get(t, sb.ID)
	if ended.Status != "stopped" || ended.EndReason == nil || *ended.EndReason != "deleted" || ended.EndedAt == nil {
		t.Fatalf("after delete: %+v", ended)
	}
	if left := containers(t, id); len(left) != 0 {
		t.Fatalf("containers left after delete: %v", left)
	}
}

func TestCreateValidation(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_invalid")
	manyMeta := map[string]string{}
	for i := range 51 {
		manyMeta[fmt.Sprint("k", i)] = "v"
	}
	metaJSON, _ := json.Marshal(map[string]any{"metadata": manyMeta})
	tests := []struct {
		name      string
		body      string
		wantField string
	}{
		{"image not allowed", `{"image":"alpine:latest"}`, "image"},
		{"cpu zero", `{"cpu":0}`, "cpu"},
		{"cpu above the maximum", `{"cpu":64}`, "cpu"},
		{"memory below the minimum", `{"memory_mb":1}`, "memory_mb"},
		{"memory above the maximum", `{"memory_mb":1048576}`, "memory_mb"},
		{"disk zero", `{"disk_mb":0}`, "disk_mb"},
		{"disk negative", `{"disk_mb":-64}`, "disk_mb"},
		{"disk below the minimum", `{"disk_mb":15}`, "disk_mb"},
		{"disk above the maximum", fmt.Sprintf(`{"disk_mb":%d}`, id.cfg.Sandbox.MaxDiskMB+1), "disk_mb"},
		{"disk not an integer", `{"disk_mb":64.5}`, "disk_mb"},
		{"disk a string", `{"disk_mb":"64"}`, "disk_mb"},
		{"timeout zero", `{"timeout_seconds":0}`, "timeout_seconds"},
		{"timeout beyond max lifetime", `{"timeout_seconds":86401}`, "timeout_seconds"},
		{"too many metadata pairs", string(metaJSON), "metadata"},
		{"metadata key too long", fmt.Sprintf(`{"metadata":{%q:"v"}}`, strings.Repeat("k", 65)), "metadata"},
		{"metadata empty key", `{"metadata":{"":"v"}}`, "metadata"},
		{"metadata value too long", fmt.Sprintf(`{"metadata":{"k":%q}}`, strings.Repeat("v", 513)), "metadata"},
		{"metadata value not a string", `{"metadata":{"k":1}}`, "metadata"},
		{"env name not POSIX", `{"env":{"1BAD":"x"}}`, "env"},
		{"env name with a dash", `{"env":{"BAD-NAME":"x"}}`, "env"},
		{"env too large", fmt.Sprintf(`{"env":{"BIG":%q}}`, strings.Repeat("x", 70000)), "env"},
		{"command with an empty program", `{"command":[""]}`, "command"},
		{"command not a list", `{"command":"sleep 1"}`, "command"},
		{"unknown field", `{"imagee":"x"}`, "imagee"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := u.do(t, "POST", "/api/sandboxes", tt.body)
			if resp.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.Status, resp.Body)
			}
			var body struct {
				Error struct{ Code, Field, Message string } `json:"error"`
			}
			mustJSON(t, resp.Body, &body)
			if body.Error.Field != tt.wantField || body.Error.Message == "" {
				t.Errorf("field %q (%s), want %q", body.Error.Field, body.Error.Message, tt.wantField)
			}
		})
	}
	if left := containers(t, id); len(left) != 0 {
		t.Errorf("invalid input created containers: %v", left)
	}
	if list := u.do(t, "GET", "/api/sandboxes", ""); !strings.Contains(list.Body, `"sandboxes":[]`) {
		t.Errorf("invalid input created rows: %s", list.Body)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_list")
	var made []string
	for i := range 5 {
		team := map[bool]string{true: "ml", false: "web"}[i%2 == 0]
		made = append(made, u.create(t, fmt.Sprintf(`{"metadata":{"team":%q,"n":"%d"}}`, team, i)).ID)
	}
	if resp := u.do(t, "DELETE", "/api/sandboxes/"+made[0], ""); resp.Status != http.StatusNoContent {
		t.Fatal(resp.Body)
	}
	list := func(query string) ([]string, *string) {
		resp := u.do(t, "GET", "/api/sandboxes"+query, "")
		if resp.Status != http.StatusOK {
			t.Fatalf("list %s: %d %s", query, resp.Status, resp.Body)
		}
		var page struct {
			Sandboxes  []sandbox `json:"sandboxes"`
			NextCursor *string   `json:"next_cursor"`
		}
		mustJSON(t, resp.Body, &page)
		ids := []string{}
		for _, sb := range page.Sandboxes {
			ids = append(ids, sb.ID)
		}
		return ids, page.NextCursor
	}
	newestFirst := slices.Clone(made)
	slices.Reverse(newestFirst)
	tests := []struct {
		query string
		want  []string
	}{
		{"", newestFirst},
		{"?metadata[team]=ml", []string{made[4], made[2], made[0]}},
		{"?metadata[team]=ml&metadata[n]=2", []string{made[2]}},
		{"?status=stopped", []string{made[0]}},
		{"?status=running&metadata[team]=ml", []string{made[4], made[2]}},
		{"?metadata[team]=nobody", []string{}},
	}
	for _, tt := range tests {
		if got, _ := list(tt.query); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("list%s = %v, want %v", tt.query, got, tt.want)
		}
	}
	var paged []string
	cursor := ""
	for pages := 0; ; pages++ {
		ids, next := list("?limit=2" + cursor)
		paged = append(paged, ids...)
		if next == nil {
			if pages != 2 {
				t.Errorf("%d pages of 2 for 5 sandboxes", pages+1)
			}
			break
		}
		cursor = "&cursor=" + *next
	}
	if fmt.Sprint(paged) != fmt.Sprint(newestFirst) {
		t.Errorf("paged %v, want %v", paged, newestFirst)
	}
	for _, bad := range []string{"?limit=0", "?limit=101", "?limit=x", "?status=zombie", "?cursor=garbage"} {
		if resp := u.do(t, "GET", "/api/sandboxes"+bad, ""); resp.Status != http.StatusBadRequest {
			t.Errorf("list%s = %d, want 400", bad, resp.Status)
		}
	}
}

// TestQuotaRace: 50 parallel creates against a quota of 10 give exactly 10 sandboxes.
func TestQuotaRace(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Sandbox.MaxPerUser = 10
		c.RateLimit.PrincipalBurst = 1000
		c.Database.MaxOpenConns = 60
	})
	u := newSandboxUser(t, id, "user_quota")
	statuses := make([]int, 50)
	codes := make([]string, 50)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := u.do(t, "POST", "/api/sandboxes", `{"memory_mb":32}`)
			statuses[i] = resp.Status
			if resp.Status != http.StatusCreated {
				codes[i] = errorCode(t, resp)
			}
		}()
	}
	wg.Wait()
	created, limited := 0, 0
	for i, s := range statuses {
		switch {
		case s == http.StatusCreated:
			created++
		case s == http.StatusTooManyRequests && codes[i] == "quota_exceeded":
			limited++
		default:
			t.Errorf("request %d: %d %s", i, s, codes[i])
		}
	}
	if created != 10 || limited != 40 {
		t.Fatalf("%d created and %d refused, want 10 and 40", created, limited)
	}
	if n := len(containers(t, id)); n != 10 {
		t.Fatalf("%d containers, want 10", n)
	}
}

func TestExpiryReapsWithinSeconds(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_expire")
	short := u.create(t, `{"timeout_seconds":1}`)
	long := u.create(t, `{"timeout_seconds":600}`)
	eventually(t, "the short sandbox to expire", 10*time.Second, func() bool { return u.get(t, short.ID).Status == "expired" })
	got := u.get(t, short.ID)
	if got.EndReason == nil || *got.EndReason != "expired" || got.EndedAt.Sub(got.ExpiresAt) > 5*time.Second {
		t.Errorf("expired sandbox: %+v", got)
	}
	if names := containers(t, id); fmt.Sprint(names) != fmt.Sprint([]string{"sbx-" + long.ID}) {
		t.Errorf("containers after reaping: %v", names)
	}
}

// TestTwoReplicasReapEachSandboxOnce: two service instances share the database; every expired
// sandbox is reaped, and by exactly one of them.
func TestTwoReplicasReapEachSandboxOnce(t *testing.T) {
	a := startIdentity(t, nil)
	cfgB := *a.cfg
	cfgB.App.Instance = a.cfg.App.Instance + "-b"
	b := startIdentityWith(t, &cfgB, a.clerk, a.secret)
	u := newSandboxUser(t, a, "user_reap")
	const n = 8
	var ids []string
	for range n {
		ids = append(ids, u.create(t, `{"timeout_seconds":2,"memory_mb":32}`).ID)
	}
	eventually(t, "every sandbox to expire", 20*time.Second, func() bool {
		for _, sbID := range ids {
			if u.get(t, sbID).Status != "expired" {
				return false
			}
		}
		return true
	})
	if total := a.reaped() + b.reaped(); total != n {
		t.Fatalf("replicas reaped %d + %d = %d sandboxes, want exactly %d", a.reaped(), b.reaped(), total, n)
	}
	if left := containers(t, a); len(left) != 0 {
		t.Fatalf("containers left: %v", left)
	}
}

// TestIdempotentCreate: concurrent retries of one create get one sandbox, whether it starts cold
// or a warm pool serves it (where the retries may arrive in one batch).
func TestIdempotentCreate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config func(*config.Config, *clerkstub.Server)
	}{
		{"cold", nil},
		{"warm", withPool(2, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) { testIdempotentCreate(t, tc.config) })
	}
}

func testIdempotentCreate(t *testing.T, configure func(*config.Config, *clerkstub.Server)) {
	id := startIdentity(t, configure)
	u := newSandboxUser(t, id, "user_idem")
	if configure != nil {
		waitPoolReady(t, id, 2)
	}
	headers := map[string]string{"Authorization": "Bearer " + u.key, "Idempotency-Key": "create-42"}
	results := make([]testenv.Response, 5)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = id.Do(t, "POST", "/api/sandboxes", `{"metadata":{"try":"x"}}`, headers)
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, r := range results {
		if r.Status != http.StatusCreated {
			t.Fatalf("retry: %d %s", r.Status, r.Body)
		}
		var sb sandbox
		mustJSON(t, r.Body, &sb)
		seen[sb.ID] = true
	}
	if len(seen) != 1 {
		t.Fatalf("one Idempotency-Key created %d sandboxes", len(seen))
	}
	var page struct{ Sandboxes []sandbox }
	mustJSON(t, u.do(t, "GET", "/api/sandboxes", "").Body, &page)
	if len(page.Sandboxes) != 1 || !seen[page.Sandboxes[0].ID] {
		t.Fatalf("sandboxes %+v, want only the one the retries got", page.Sandboxes)
	}
	if configure != nil && page.Sandboxes[0].Start != "warm" {
		t.Fatalf("the pool did not serve the create: start %q", page.Sandboxes[0].Start)
	}
	other := id.Do(t, "POST", "/api/sandboxes", `{}`, map[string]string{"Authorization": "Bearer " + u.key, "Idempotency-Key": "create-43"})
	if other.Status != http.StatusCreated || strings.Contains(other.Body, fmt.Sprint(keys(seen)[0])) {
		t.Fatalf("a new key must create a new sandbox: %d %s", other.Status, other.Body)
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestSandboxTenancy(t *testing.T) {
	id := startIdentity(t, nil)
	alice, bob := newSandboxUser(t, id, "user_alice_sb"), newSandboxUser(t, id, "user_bob_sb")
	sb := alice.create(t, `{}`)
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/api/sandboxes/" + sb.ID, ""},
		{"DELETE", "/api/sandboxes/" + sb.ID, ""},
		{"POST", "/api/sandboxes/" + sb.ID + "/timeout", `{"timeout_seconds":60}`},
		{"POST", "/api/sandboxes/" + sb.ID + "/keepalive", ""},
		{"GET", "/api/sandboxes/not-a-uuid", ""},
	} {
		resp := bob.do(t, req.method, req.path, req.body)
		if resp.Status != http.StatusNotFound || errorCode(t, resp) != "not_found" {
			t.Errorf("bob %s %s = %d %s", req.method, req.path, resp.Status, resp.Body)
		}
	}
	if list := bob.do(t, "GET", "/api/sandboxes", ""); strings.Contains(list.Body, sb.ID) {
		t.Errorf("bob lists alice's sandbox")
	}
	if got := alice.get(t, sb.ID); got.Status != "running" {
		t.Fatalf("bob's attempts changed alice's sandbox: %+v", got)
	}
	readOnly := id.createKey(t, id.session(t, "user_alice_sb"), `{"name":"ro","scopes":["sandboxes:read"]}`)
	if resp := id.Do(t, "DELETE", "/api/sandboxes/"+sb.ID, "", bearer(readOnly.Key)); resp.Status != http.StatusForbidden {
		t.Errorf("read-only key deleted: %d", resp.Status)
	}
	if resp := id.Do(t, "GET", "/api/sandboxes/"+sb.ID, "", bearer(readOnly.Key)); resp.Status != http.StatusOK {
		t.Errorf("read-only key cannot read: %d", resp.Status)
	}
	session := id.session(t, "user_alice_sb")
	if resp := id.Do(t, "GET", "/api/sandboxes/"+sb.ID, "", bearer(session)); resp.Status != http.StatusOK {
		t.Errorf("a Clerk session cannot read its sandbox: %d", resp.Status)
	}
}

func TestTimeoutAndKeepalive(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Sandbox.MaxLifetime = time.Hour })
	u := newSandboxUser(t, id, "user_timeout")
	sb := u.create(t, `{"timeout_seconds":60}`)
	var got sandbox
	resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/timeout", `{"timeout_seconds":1800}`)
	mustJSON(t, resp.Body, &got)
	if d := time.Until(got.ExpiresAt); resp.Status != http.StatusOK || d < 1790*time.Second || d > 1800*time.Second {
		t.Fatalf("timeout 1800: %d, expires in %v", resp.Status, d)
	}
	resp = u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/timeout", `{"timeout_seconds":3600}`)
	mustJSON(t, resp.Body, &got)
	if limit := sb.CreatedAt.Add(time.Hour); got.ExpiresAt.After(limit.Add(time.Millisecond)) {
		t.Fatalf("expiry %v beyond max lifetime from creation %v", got.ExpiresAt, limit)
	}
	resp = u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/keepalive", "")
	mustJSON(t, resp.Body, &got)
	if d := time.Until(got.ExpiresAt); resp.Status != http.StatusOK || d < 55*time.Second || d > 60*time.Second {
		t.Fatalf("keepalive: %d, expires in %v", resp.Status, d)
	}
	for _, bad := range []string{`{"timeout_seconds":0}`, `{"timeout_seconds":3601}`, `{}`, `{"timeout_seconds":"x"}`} {
		if resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/timeout", bad); resp.Status != http.StatusBadRequest {
			t.Errorf("timeout %s = %d, want 400", bad, resp.Status)
		}
	}
	u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, "")
	if resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/keepalive", ""); resp.Status != http.StatusConflict {
		t.Errorf("keepalive of a stopped sandbox = %d, want 409", resp.Status)
	}
}

// TestFailedStartLeavesNoContainer: a sandbox whose container cannot start ends failed with the
// runtime's reason, and nothing is left behind.
func TestFailedStartLeavesNoContainer(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Sandbox.AllowedImages = append(c.Sandbox.AllowedImages, "insien/sandbox:absent")
		c.Sandbox.ReconcileInterval = 300 * time.Millisecond
	})
	u := newSandboxUser(t, id, "user_fail")

	resp := u.do(t, "POST", "/api/sandboxes", `{"image":"insien/sandbox:absent"}`)
	if resp.Status != http.StatusUnprocessableEntity || errorCode(t, resp) != "image_unavailable" {
		t.Fatalf("missing image: %d %s", resp.Status, resp.Body)
	}
	// The engine starts the init process, which then fails to exec the command: the create
	// either sees the exit at once (422 sandbox_exited) or the event watcher records it.
	resp = u.do(t, "POST", "/api/sandboxes", `{"command":["/no/such/program"]}`)
	if (resp.Status != http.StatusUnprocessableEntity || errorCode(t, resp) != "sandbox_exited") && resp.Status != http.StatusCreated {
		t.Fatalf("missing command: %d %s", resp.Status, resp.Body)
	}
	failed := func() []sandbox {
		var page struct{ Sandboxes []sandbox }
		mustJSON(t, u.do(t, "GET", "/api/sandboxes?status=failed", "").Body, &page)
		return page.Sandboxes
	}
	eventually(t, "both sandboxes to be failed", 10*time.Second, func() bool { return len(failed()) == 2 })
	for _, sb := range failed() {
		if sb.EndReason == nil || *sb.EndReason == "" || sb.EndedAt == nil {
			t.Errorf("failed sandbox without a reason: %+v", sb)
		}
	}
	eventually(t, "no container left", 10*time.Second, func() bool { return len(containers(t, id)) == 0 })
}

// TestReconciliation: a container without a row is removed; a row whose container was removed
// behind the orchestrator's back becomes failed (the engine kills it first: the die event says
// 137). A container lost while no replica watched is TestMissedEventsAreReconciled's.
func TestReconciliation(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Sandbox.ReconcileInterval = 300 * time.Millisecond })
	u := newSandboxUser(t, id, "user_reconcile")
	kept := u.create(t, `{}`)
	lost := u.create(t, `{}`)
	orphan := u.create(t, `{}`)
	db := testenv.OpenSQL(t, id.cfg.Database.URL.Reveal())
	if _, err := db.Exec("DELETE FROM sandboxes WHERE id = $1", orphan.ID); err != nil {
		t.Fatal(err)
	}
	testenv.RemoveWorkload(t, id.cfg, "sbx-"+lost.ID)
	eventually(t, "the lost sandbox to be marked failed", 10*time.Second, func() bool {
		return u.get(t, lost.ID).Status == "failed"
	})
	// Docker reports the forced removal as the main process killed (137) before the container
	// vanishes; Kubernetes reports the Pod gone.
	got := u.get(t, lost.ID)
	switch testenv.Driver() {
	case "docker":
		if got.EndReason == nil || *got.EndReason != "process_exited" || got.ExitCode == nil || *got.ExitCode != 137 {
			t.Errorf("lost sandbox: %+v", got)
		}
	default:
		if got.EndReason == nil || *got.EndReason != "runtime_lost" {
			t.Errorf("lost sandbox: %+v", got)
		}
	}
	eventually(t, "the orphaned container to be removed", 10*time.Second, func() bool {
		return fmt.Sprint(containers(t, id)) == fmt.Sprint([]string{"sbx-" + kept.ID})
	})
	if got := u.get(t, kept.ID); got.Status != "running" {
		t.Errorf("healthy sandbox touched: %+v", got)
	}
}

func TestDeletedUserLosesSandboxes(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_gone")
	u.create(t, `{}`)
	u.create(t, `{}`)
	deleted := map[string]any{"type": "user.deleted", "data": map[string]any{"id": "user_gone", "deleted": true}}
	if resp := id.webhook(t, "msg_gone", deleted, 0, false); resp.Status != http.StatusOK {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
	if left := containers(t, id); len(left) != 0 {
		t.Fatalf("containers of a deleted user: %v", left)
	}
	var live int
	if err := testenv.OpenSQL(t, id.cfg.Database.URL.Reveal()).QueryRow(
		"SELECT count(*) FROM sandboxes WHERE status NOT IN ('stopped','failed','expired')").Scan(&live); err != nil || live != 0 {
		t.Fatalf("%d live rows (%v)", live, err)
	}
}

func TestReadinessIncludesRuntime(t *testing.T) {
	id := startIdentity(t, nil)
	if resp := id.Do(t, "GET", "/readyz", "", nil); resp.Status != http.StatusOK || !strings.Contains(resp.Body, `"runtime":"ok"`) {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
}

// TestRuntimeCapabilities: GET /api/runtime says which driver runs sandboxes and whether it can
// pause; a runtime that cannot answers pause and resume with 409 not_supported_by_runtime and
// leaves the sandbox running.
func TestRuntimeCapabilities(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_runtime")
	if anon := id.Do(t, "GET", "/api/runtime", "", nil); anon.Status != http.StatusUnauthorized {
		t.Errorf("without credentials: %d %s", anon.Status, anon.Body)
	}
	resp := u.do(t, "GET", "/api/runtime", "")
	var rt struct {
		Driver       string `json:"driver"`
		Capabilities struct {
			Pause      bool  `json:"pause"`
			LogStreams bool  `json:"log_streams"`
			Volumes    bool  `json:"volumes"`
			DiskLimit  *bool `json:"disk_limit"` // true where the engine can (TestDiskLimit)
		} `json:"capabilities"`
	}
	mustJSON(t, resp.Body, &rt)
	full := map[string]bool{"docker": true, "kubernetes": false} // Kubernetes can neither pause nor split logs
	if resp.Status != http.StatusOK || rt.Driver != testenv.Driver() || rt.Capabilities.Pause != full[rt.Driver] ||
		rt.Capabilities.LogStreams != full[rt.Driver] || !rt.Capabilities.Volumes || // TestVolumes holds both to volumes
		rt.Capabilities.DiskLimit == nil || (rt.Driver == "kubernetes" && !*rt.Capabilities.DiskLimit) {
		t.Fatalf("GET /api/runtime = %d %s", resp.Status, resp.Body)
	}
	if rt.Capabilities.Pause {
		return // TestPauseResume holds such a runtime to pausing
	}
	sb := u.create(t, `{}`)
	for _, path := range []string{"/pause", "/resume"} {
		resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+path, "")
		if resp.Status != http.StatusConflict || errorCode(t, resp) != "not_supported_by_runtime" {
			t.Errorf("POST %s = %d %s", path, resp.Status, resp.Body)
		}
	}
	if got := u.get(t, sb.ID); got.Status != "running" || got.PausedAt != nil {
		t.Errorf("after refused pause: %+v", got)
	}
	if out := u.sh(t, sb.ID, "echo still here"); out != "still here\n" {
		t.Errorf("exec after refused pause: %q", out)
	}
}

func TestPauseResume(t *testing.T) {
	testenv.DockerOnly(t) // reads the container's paused state from the engine
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_pause")
	sb := u.create(t, `{}`)
	state := func(path string) (int, sandbox) {
		resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+path, "")
		var got sandbox
		if resp.Status == http.StatusOK {
			mustJSON(t, resp.Body, &got)
		}
		return resp.Status, got
	}
	paused := func() bool {
		res, err := testenv.Docker(t).ContainerInspect(t.Context(), "sbx-"+sb.ID, client.ContainerInspectOptions{})
		return err == nil && res.Container.State.Paused
	}
	steps := []struct {
		path       string
		wantStatus string
		wantPaused bool
	}{
		{"/pause", "paused", true},
		{"/pause", "paused", true},
		{"/resume", "running", false},
		{"/resume", "running", false},
	}
	for _, step := range steps {
		code, got := state(step.path)
		if code != http.StatusOK || got.Status != step.wantStatus || paused() != step.wantPaused {
			t.Fatalf("%s: %d %s, container paused=%v", step.path, code, got.Status, paused())
		}
	}

	t.Run("pause stops a counter and resume continues it", func(t *testing.T) {
		// Written aside and renamed, so no reader (nor a pause) ever finds the file empty.
		counter := u.create(t, `{"command":["sh","-c","i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done"]}`)
		read := func() int {
			t.Helper()
			resp := u.do(t, "POST", "/api/sandboxes/"+counter.ID+"/exec", `{"cmd":["cat","/tmp/count"]}`)
			var out struct{ Stdout string }
			mustJSON(t, resp.Body, &out)
			n, err := strconv.Atoi(strings.TrimSpace(out.Stdout))
			if resp.Status != http.StatusOK || err != nil {
				t.Fatalf("reading the counter: %d %s", resp.Status, resp.Body)
			}
			return n
		}
		testenv.Eventually(t, "the counter to start", 5*time.Second, func() bool { return read() > 0 })
		if resp := u.do(t, "POST", "/api/sandboxes/"+counter.ID+"/pause", ""); resp.Status != http.StatusOK {
			t.Fatal(resp.Body)
		}
		atPause := readPausedCounter(t, counter.ID)
		time.Sleep(1500 * time.Millisecond) // about 15 ticks if it were running
		if resp := u.do(t, "POST", "/api/sandboxes/"+counter.ID+"/resume", ""); resp.Status != http.StatusOK {
			t.Fatal(resp.Body)
		}
		afterResume := read()
		if afterResume < atPause || afterResume > atPause+5 {
			t.Fatalf("counter %d at pause, %d right after resume: it ran while paused (or lost its memory)", atPause, afterResume)
		}
		testenv.Eventually(t, "the counter to continue", 5*time.Second, func() bool { return read() > afterResume+3 })
	})

	u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, "")
	if code, _ := state("/pause"); code != http.StatusConflict {
		t.Errorf("pausing a stopped sandbox = %d, want 409", code)
	}
}

// readPausedCounter reads the counter file of a paused sandbox from outside (exec is refused
// while paused), through the Engine API's archive of the path.
func readPausedCounter(t *testing.T, id string) int {
	t.Helper()
	rc, err := testenv.Docker(t).CopyFromContainer(t.Context(), "sbx-"+id, client.CopyFromContainerOptions{SourcePath: "/tmp/count"})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Content.Close()
	tr := tar.NewReader(rc.Content)
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(tr)
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("counter file %q", data)
	}
	return n
}

// TestRedisLossLosesNothing: with Redis gone, sandboxes are still created, read, listed and
// deleted from Postgres, and nothing is lost when Redis comes back empty.
func TestRedisLossLosesNothing(t *testing.T) {
	redisServer := testenv.StartRedis(t)
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Redis.URL = config.Secret(redisServer.URL()) })
	u := newSandboxUser(t, id, "user_redis_loss")
	before := u.create(t, `{"metadata":{"when":"before"}}`)
	u.get(t, before.ID) // now cached in Redis

	redisServer.Stop()
	during := u.create(t, `{"metadata":{"when":"during"}}`)
	if got := u.get(t, before.ID); got.Status != "running" {
		t.Fatalf("sandbox created before the loss: %+v", got)
	}
	if list := u.do(t, "GET", "/api/sandboxes", ""); !strings.Contains(list.Body, before.ID) || !strings.Contains(list.Body, during.ID) {
		t.Fatalf("list without Redis: %s", list.Body)
	}

	redisServer.Start() // empty: Redis held only copies
	for _, sb := range []sandbox{before, during} {
		if got := u.get(t, sb.ID); got.Status != "running" {
			t.Errorf("after Redis returned empty: %+v", got)
		}
		if resp := u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, ""); resp.Status != http.StatusNoContent {
			t.Errorf("delete: %d %s", resp.Status, resp.Body)
		}
	}
	if left := containers(t, id); len(left) != 0 {
		t.Fatalf("containers left: %v", left)
	}
}
