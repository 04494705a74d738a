package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/internal/testenv"
)

// engineWords are fragments of the engine's and runc's own error texts, which must never reach a
// client: they name host paths, cgroups and internals.
var engineWords = []string{"cgroup", "runc", "/sys/fs", "OCI", "shim", "Range of CPUs", "daemon"}

func leaksEngineText(body string) bool {
	for _, w := range engineWords {
		if strings.Contains(body, w) {
			return true
		}
	}
	return false
}

// TestCPUBelowEnforceableMinimum: a CPU limit the engine would not enforce is refused as the cpu
// field's error. 1e-9 core used to become NanoCPUs=1 (no quota at all: a sandbox burned whole
// cores), and 1e-5 to 0.0099 a 502 quoting runc with a host cgroup path.
func TestCPUBelowEnforceableMinimum(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_cpu_min")
	for _, body := range []string{
		`{"cpu":1e-9}`, `{"cpu":1e-5}`, `{"cpu":0.005}`, `{"cpu":0.0099}`, `{"cpu":-1}`,
		`{"cpu":0.0105}`, `{"cpu":0.1234}`, // finer than a millicore: not what the engine would apply
	} {
		resp := u.do(t, "POST", "/api/sandboxes", body)
		var e struct {
			Error struct{ Field, Message string }
		}
		mustJSON(t, resp.Body, &e)
		if resp.Status != http.StatusBadRequest || errorCode(t, resp) != "validation_failed" || e.Error.Field != "cpu" ||
			leaksEngineText(resp.Body) {
			t.Errorf("%s = %d %s, want 400 on field cpu", body, resp.Status, resp.Body)
		}
	}
	if left := containers(t, id); len(left) != 0 {
		t.Errorf("refused creates left containers: %v", left)
	}

	// The minimum itself is a real quota: 1 ms of CPU per 100 ms period.
	sb := u.create(t, `{"cpu":0.01}`)
	res, err := testenv.Docker(t).ContainerInspect(t.Context(), "sbx-"+sb.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sb.CPU != 0.01 || res.Container.HostConfig.NanoCPUs != 10_000_000 {
		t.Errorf("cpu 0.01: reported %g, NanoCPUs %d; want 0.01 and 10000000", sb.CPU, res.Container.HostConfig.NanoCPUs)
	}
}

// TestLimitsTheHostCannotGive: more CPUs than the host has (within max_cpu) is refused by the
// engine; the client learns that in words of ours, not the engine's, and nothing is left.
func TestLimitsTheHostCannotGive(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_host_cpu")
	resp := u.do(t, "POST", "/api/sandboxes", fmt.Sprintf(`{"cpu":%g}`, id.cfg.Sandbox.MaxCPU)) // 4 by default; this host has 2
	if resp.Status != http.StatusUnprocessableEntity || errorCode(t, resp) != "limits_unavailable" || leaksEngineText(resp.Body) {
		t.Fatalf("cpu %g on a smaller host = %d %s", id.cfg.Sandbox.MaxCPU, resp.Status, resp.Body)
	}
	var page struct{ Sandboxes []sandbox }
	mustJSON(t, u.do(t, "GET", "/api/sandboxes", "").Body, &page)
	if len(page.Sandboxes) != 1 || page.Sandboxes[0].Status != "failed" || page.Sandboxes[0].EndReason == nil ||
		*page.Sandboxes[0].EndReason != "limits_refused" || leaksEngineText(*page.Sandboxes[0].EndReason) {
		t.Errorf("the refused sandbox reads %+v", page.Sandboxes)
	}
	if left := containers(t, id); len(left) != 0 {
		t.Errorf("containers left: %v", left)
	}
}

// TestStatusFollowsEngineEvents: a sandbox whose main process exits, or is killed by the OOM
// killer, reads as ended within moments (it used to read running until the reconciler, 30 s),
// with end_reason and exit_code; pausing, resuming or running a command in it is 409
// sandbox_not_running, never 500.
func TestStatusFollowsEngineEvents(t *testing.T) {
	id := startIdentity(t, nil) // reconcile_interval stays 30 s: only the events can be this fast
	u := newSandboxUser(t, id, "user_events")
	const hog = `x=$(head -c 100000000 /dev/zero | tr "\0" a)`
	cases := []struct {
		name       string
		body       string
		wantStatus string
		wantReason string
		wantCode   int
	}{
		{"exit 3", `{"command":["sh","-c","sleep 2; exit 3"]}`, "failed", "process_exited", 3},
		{"exit 0", `{"command":["sh","-c","sleep 2; exit 0"]}`, "stopped", "process_exited", 0},
		{"OOM-killed", fmt.Sprintf(`{"memory_mb":16,"command":["sh","-c",%q]}`, "sleep 2; "+hog), "failed", "oom_killed", 137},
	}
	t.Run("each", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel() // a create takes seconds on a loaded engine
				endsAtOnce(t, u, c.body, c.wantStatus, c.wantReason, c.wantCode)
			})
		}
	})
	eventually(t, "the ended sandboxes' containers to be removed", 10*time.Second, func() bool { return len(containers(t, id)) == 0 })
}

// endsAtOnce creates a sandbox whose command ends 2 s later and checks that the status
// follows, and that the routes that need a live sandbox answer 409.
func endsAtOnce(t *testing.T, u sandboxUser, body, wantStatus, wantReason string, wantCode int) {
	sb := u.create(t, body)
	created := time.Now()
	var got sandbox
	eventually(t, "the status to follow the engine", 5*time.Second, func() bool {
		got = u.get(t, sb.ID)
		return got.Status == wantStatus
	})
	t.Logf("%s %s after the create returned (the command ran 2 s)", got.Status, time.Since(created).Round(10*time.Millisecond))
	if got.EndReason == nil || *got.EndReason != wantReason || got.ExitCode == nil || *got.ExitCode != wantCode || got.EndedAt == nil {
		t.Errorf("%+v, want end_reason %s and exit_code %d", got, wantReason, wantCode)
	}
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/pause", ""}, {"POST", "/resume", ""}, {"POST", "/keepalive", ""},
		{"POST", "/exec", `{"cmd":["true"]}`},
	} {
		resp := u.do(t, req.method, "/api/sandboxes/"+sb.ID+req.path, req.body)
		if resp.Status != http.StatusConflict || !strings.HasPrefix(errorCode(t, resp), "sandbox_not_") {
			t.Errorf("%s %s of an ended sandbox = %d %s, want 409", req.method, req.path, resp.Status, resp.Body)
		}
	}
}

// TestMissedEventsAreReconciled: what happened while no replica watched the engine is found when
// one starts watching: a container that vanished (runtime_lost) and one whose process exited.
func TestMissedEventsAreReconciled(t *testing.T) {
	a := startIdentity(t, nil)
	u := newSandboxUser(t, a, "user_missed")
	lost := u.create(t, `{}`)
	exits := u.create(t, `{"command":["sh","-c","sleep 2; exit 4"]}`)
	a.Stop(t)

	docker := testenv.Docker(t)
	if _, err := docker.ContainerRemove(context.Background(), "sbx-"+lost.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the command to exit while no replica watches", 10*time.Second, func() bool {
		res, err := docker.ContainerInspect(context.Background(), "sbx-"+exits.ID, client.ContainerInspectOptions{})
		return err == nil && !res.Container.State.Running
	})

	b := startIdentityWith(t, a.cfg, a.clerk, a.secret)
	ub := sandboxUser{id: b, key: u.key}
	for _, c := range []struct {
		sb     sandbox
		reason string
		code   *int
	}{
		{lost, "runtime_lost", nil},
		{exits, "process_exited", new(4)},
	} {
		var got sandbox
		eventually(t, "the sandbox to be failed", 5*time.Second, func() bool {
			got = ub.get(t, c.sb.ID)
			return got.Status == "failed"
		})
		if got.EndReason == nil || *got.EndReason != c.reason || fmt.Sprint(deref(got.ExitCode)) != fmt.Sprint(deref(c.code)) {
			t.Errorf("%+v, want end_reason %s and exit code %v", got, c.reason, deref(c.code))
		}
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestIdempotencyKeyReusedWithAnotherRequest: the same key with the same request (in any field
// order or spacing) replays the first sandbox; with another request, including another env value
// under the same name, it is 422 idempotency_key_reused (it used to return the first sandbox).
func TestIdempotencyKeyReusedWithAnotherRequest(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_idem_reuse")
	send := func(key, body string) testenv.Response {
		return id.Do(t, "POST", "/api/sandboxes", body, map[string]string{"Authorization": "Bearer " + u.key, "Idempotency-Key": key})
	}
	first := send("k1", `{"metadata":{"a":"1","b":"2"},"env":{"TOKEN":"one"},"cpu":0.5}`)
	if first.Status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.Status, first.Body)
	}
	var sb sandbox
	mustJSON(t, first.Body, &sb)

	same := send("k1", ` { "cpu": 0.5, "env": {"TOKEN": "one"}, "metadata": {"b":"2","a":"1"} } `)
	var replayed sandbox
	mustJSON(t, same.Body, &replayed)
	if same.Status != http.StatusCreated || replayed.ID != sb.ID || same.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the same request again = %d %s", same.Status, same.Body)
	}
	for _, body := range []string{
		`{"metadata":{"a":"1","b":"2"},"env":{"TOKEN":"one"},"cpu":1}`,
		`{"metadata":{"a":"1","b":"2"},"env":{"TOKEN":"two"},"cpu":0.5}`,
		`{"metadata":{"a":"1"},"env":{"TOKEN":"one"},"cpu":0.5}`,
		`{}`,
	} {
		resp := send("k1", body)
		if resp.Status != http.StatusUnprocessableEntity || errorCode(t, resp) != "idempotency_key_reused" ||
			strings.Contains(resp.Body, sb.ID) {
			t.Errorf("k1 with %s = %d %s, want 422 idempotency_key_reused", body, resp.Status, resp.Body)
		}
	}

	// Concurrent first uses of one key with two different requests: one sandbox; the requests like
	// the winner's get it, the others 422.
	bodies := []string{`{"metadata":{"v":"a"}}`, `{"metadata":{"v":"b"}}`}
	results := make([]testenv.Response, 6)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = send("k2", bodies[i%2]) })
	}
	wg.Wait()
	winners := map[string]bool{}
	won := map[int]bool{}
	for i, r := range results {
		switch r.Status {
		case http.StatusCreated:
			var s sandbox
			mustJSON(t, r.Body, &s)
			winners[s.ID] = true
			won[i%2] = true
		case http.StatusUnprocessableEntity:
			if code := errorCode(t, r); code != "idempotency_key_reused" {
				t.Errorf("concurrent loser: %s", code)
			}
		default:
			t.Errorf("concurrent request %d: %d %s", i, r.Status, r.Body)
		}
	}
	if len(winners) != 1 || len(won) != 1 {
		t.Errorf("one key, two requests at once: sandboxes %v, winning bodies %v; want one of each", keys(winners), won)
	}
	if n := len(containers(t, id)); n != 2 {
		t.Errorf("%d containers, want 2 (k1 and k2)", n)
	}
}
