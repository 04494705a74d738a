package handlers_test

import (
	"database/sql"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes/runtimetest"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// withPool turns the warm pool of the default image on, with members of 32 MiB.
func withPool(size int, more func(*config.Config)) func(*config.Config, *clerkstub.Server) {
	return func(c *config.Config, _ *clerkstub.Server) {
		c.Sandbox.WarmPool.Enabled, c.Sandbox.WarmPool.Size = true, size
		c.Sandbox.WarmPool.RefillPerSecond = 20
		c.Sandbox.DefaultMemoryMB = 32
		if more != nil {
			more(c)
		}
	}
}

// poolCounts reads how many members are ready and starting, straight from Postgres.
func poolCounts(t testing.TB, id *identity) (ready, starting int) {
	t.Helper()
	db, err := sql.Open("pgx", string(id.cfg.Database.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.QueryRow(`SELECT count(*) FILTER (WHERE status = 'ready'), count(*) FILTER (WHERE status = 'starting') FROM pool_members`).
		Scan(&ready, &starting)
	if err != nil {
		t.Fatal(err)
	}
	return ready, starting
}

func waitPoolReady(t testing.TB, id *identity, want int) {
	t.Helper()
	eventually(t, "the pool to hold its target of ready members", 60*time.Second, func() bool {
		ready, starting := poolCounts(t, id)
		return ready == want && starting == 0
	})
}

// TestWarmPool: a create the pool can serve claims a running member, which then behaves as a
// sandbox created for the request (its limits, env, ownership); one it cannot serve starts cold;
// the pool refills behind claims.
func TestWarmPool(t *testing.T) {
	id := startIdentity(t, withPool(3, nil))
	u := newSandboxUser(t, id, "user_pool")
	waitPoolReady(t, id, 3)
	members := containers(t, id)

	warm := u.create(t, `{"env":{"GREETING":"hello from the pool"},"metadata":{"job":"warm"},"timeout_seconds":120}`)
	if warm.Start != "warm" || warm.Status != "running" || !slices.Contains(members, "sbx-"+warm.ID) {
		t.Fatalf("create served by the pool: start %q status %q, id %s not one of the members %v", warm.Start, warm.Status, warm.ID, members)
	}
	if warm.TimeoutSeconds != 120 || warm.Metadata["job"] != "warm" || strings.Join(warm.EnvNames, ",") != "GREETING" {
		t.Errorf("the request's settings were not applied: %+v", warm)
	}
	if got := u.sh(t, warm.ID, `echo "$GREETING"`); got != "hello from the pool\n" {
		t.Errorf("exec in a warm sandbox sees GREETING=%q, want the create's env", got)
	}
	if got := u.exec(t, warm.ID, map[string]any{"cmd": []string{"sh", "-c", `echo "$GREETING"`}, "env": map[string]string{"GREETING": "mine"}}).Stdout; got != "mine\n" {
		t.Errorf("an exec's own env must win over the sandbox's: got %q", got)
	}
	// Inserted running, it is recorded as created then running, as a cold sandbox is.
	life := u.eventLog(t, "sandbox_id="+warm.ID).Events
	if len(life) != 2 || life[0].Type != "sandbox.running" || life[1].Type != "sandbox.created" ||
		life[1].Data["status"] != "pending" || life[0].Data["previous_status"] != "pending" || life[0].Actor != life[1].Actor {
		t.Errorf("a warm sandbox's events: %+v, want sandbox.created then sandbox.running by its creator", life)
	}
	if got := u.get(t, warm.ID); got.Status != "running" {
		t.Errorf("GET the warm sandbox: %+v", got)
	}

	cases := []struct {
		name, body, wantStart string
	}{
		{"a custom command needs its own container", `{"command":["sleep","600"]}`, "cold"},
		{"the members' size", fmt.Sprintf(`{"memory_mb":%d,"cpu":%g}`, id.cfg.Sandbox.DefaultMemoryMB, id.cfg.Sandbox.DefaultCPU), "warm"},
	}
	if testenv.Driver() == "docker" {
		// Docker resizes a running container; a Pod keeps its limits, so there another size is cold.
		cases = append(cases, struct{ name, body, wantStart string }{"another size is resized in place", `{"memory_mb":48,"cpu":0.5}`, "warm"})
	} else {
		cases = append(cases, struct{ name, body, wantStart string }{"another size cannot be resized in place", `{"memory_mb":48,"cpu":0.5}`, "cold"})
	}
	if diskLimited(t, u) {
		// A running workload's storage size cannot change: only the members' disk is served warm.
		cases = append(cases, struct{ name, body, wantStart string }{"the members' disk", fmt.Sprintf(`{"disk_mb":%d}`, id.cfg.Sandbox.DefaultDiskMB), "warm"},
			struct{ name, body, wantStart string }{"another disk cannot come from the pool", `{"disk_mb":64}`, "cold"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			waitPoolReady(t, id, 3)
			sb := u.create(t, tc.body)
			if sb.Start != tc.wantStart {
				t.Fatalf("start %q, want %q", sb.Start, tc.wantStart)
			}
			// The limits are the request's whichever way it started: the kernel says so.
			limits := u.sh(t, sb.ID, runtimetest.CgroupLimitsScript)
			want := "memory=" + strconv.FormatInt(sb.MemoryMB<<20, 10) + "\ncpu=" + strconv.FormatInt(int64(sb.CPU*100000+0.5), 10) + " 100000\n"
			if limits != want {
				t.Errorf("the sandbox's cgroup says\n%s\nwant (memory_mb %d, cpu %g)\n%s", limits, sb.MemoryMB, sb.CPU, want)
			}
		})
	}
	waitPoolReady(t, id, 3)
}

// TestWarmPoolQuotas: members belong to no user, so they take no one's quota, but they take the
// instance's capacity; users' sandboxes come first when it is full.
func TestWarmPoolQuotas(t *testing.T) {
	id := startIdentity(t, withPool(2, func(c *config.Config) {
		c.Sandbox.MaxPerUser = 2
		c.Sandbox.MaxPerInstance = 3
	}))
	u := newSandboxUser(t, id, "user_pool_quota")
	other := newSandboxUser(t, id, "user_pool_other")
	waitPoolReady(t, id, 2)

	cold := u.create(t, `{"command":["sleep","600"]}`) // capacity: 2 members + 1
	if cold.Start != "cold" {
		t.Fatalf("a custom command started %s", cold.Start)
	}
	resp := other.do(t, "POST", "/api/sandboxes", `{"command":["sleep","600"]}`)
	if resp.Status != http.StatusTooManyRequests || errorCode(t, resp) != "quota_exceeded" {
		t.Fatalf("a cold create with the instance full of members: %d %s", resp.Status, resp.Body)
	}
	if warm := other.create(t, `{}`); warm.Start != "warm" {
		t.Fatalf("a create the pool serves must succeed at capacity: start %s", warm.Start)
	}
	if warm := u.create(t, `{}`); warm.Start != "warm" {
		t.Fatalf("the second member: start %s", warm.Start)
	}
	resp = u.do(t, "POST", "/api/sandboxes", `{}`)
	if resp.Status != http.StatusTooManyRequests || errorCode(t, resp) != "quota_exceeded" || !strings.Contains(resp.Body, "you already have 2") {
		t.Fatalf("the user's own quota still applies to warm creates: %d %s", resp.Status, resp.Body)
	}
	// Three sandboxes hold the whole capacity: the pool waits for room instead of taking it.
	time.Sleep(2 * time.Second)
	if ready, starting := poolCounts(t, id); ready+starting != 0 {
		t.Fatalf("the pool refilled past the instance's capacity: %d ready, %d starting", ready, starting)
	}
	u.do(t, "DELETE", "/api/sandboxes/"+cold.ID, "")
	waitPoolReady(t, id, 1)
}

// TestWarmPoolClaimRace: two replicas serve 50 parallel creates from one pool: no member is
// handed out twice, the user's quota stays exact, and every workload is a sandbox or a member.
func TestWarmPoolClaimRace(t *testing.T) {
	a := startIdentity(t, withPool(6, func(c *config.Config) {
		c.Sandbox.MaxPerUser = 10
		c.RateLimit.PrincipalBurst = 1000
		c.Database.MaxOpenConns = 40
	}))
	cfgB := *a.cfg
	cfgB.App.Instance = a.cfg.App.Instance + "-b"
	b := startIdentityWith(t, &cfgB, a.clerk, a.secret)
	u := newSandboxUser(t, a, "user_pool_race")
	waitPoolReady(t, a, 6)

	replicas := []*identity{a, b}
	type result struct {
		status int
		sb     sandbox
		code   string
	}
	results := make([]result, 50)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := replicas[i%2].Do(t, "POST", "/api/sandboxes", `{}`, bearer(u.key))
			results[i].status = resp.Status
			if resp.Status == http.StatusCreated {
				mustJSON(t, resp.Body, &results[i].sb)
			} else {
				results[i].code = errorCode(t, resp)
			}
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	warm, refused := 0, 0
	for i, r := range results {
		switch {
		case r.status == http.StatusCreated:
			if ids[r.sb.ID] {
				t.Errorf("sandbox %s was handed out twice", r.sb.ID)
			}
			ids[r.sb.ID] = true
			if r.sb.Start == "warm" {
				warm++
			}
		case r.status == http.StatusTooManyRequests && r.code == "quota_exceeded":
			refused++
		default:
			t.Errorf("create %d: %d %s", i, r.status, r.code)
		}
	}
	if len(ids) != 10 || refused != 40 {
		t.Fatalf("%d created and %d refused, want exactly 10 and 40", len(ids), refused)
	}
	if warm < 6 {
		t.Errorf("only %d of 10 creates claimed a member of a full pool of 6", warm)
	}
	for sbID := range ids {
		if got := u.sh(t, sbID, "hostname"); got != "sbx-"+sbID+"\n" {
			t.Errorf("sandbox %s runs in workload %q", sbID, got)
		}
	}
	waitPoolReady(t, a, 6)
	if n := len(containers(t, a)); n != 16 {
		t.Errorf("%d workloads, want 10 sandboxes + 6 members", n)
	}
}

// TestWarmPoolReplacesDeadMembers: a member removed behind the service's back is never handed
// out, and the pool makes a new one.
func TestWarmPoolReplacesDeadMembers(t *testing.T) {
	id := startIdentity(t, withPool(2, nil))
	u := newSandboxUser(t, id, "user_pool_dead")
	waitPoolReady(t, id, 2)
	before := containers(t, id)
	for _, name := range before {
		testenv.RemoveWorkload(t, id.cfg, name)
	}
	// Whatever the pool knows yet, this create gets a sandbox that runs.
	sb := u.create(t, `{}`)
	if got := u.sh(t, sb.ID, "echo ok"); got != "ok\n" {
		t.Fatalf("exec in a sandbox created right after its members died: %q", got)
	}
	if slices.Contains(before, "sbx-"+sb.ID) && sb.Start != "cold" {
		// A claim of a member that died is caught, and the sandbox made cold under that id.
		t.Fatalf("the create was handed dead member sbx-%s as %s", sb.ID, sb.Start)
	}
	waitPoolReady(t, id, 2)
	for _, name := range containers(t, id) {
		if slices.Contains(before, name) && name != "sbx-"+sb.ID {
			t.Errorf("dead member %s is back", name)
		}
	}
}

// TestWarmPoolThatCannotFill: the engine refuses the members (their default CPU is more than the
// host has): creates start cold without error, and the failure is recorded for pool status.
func TestWarmPoolThatCannotFill(t *testing.T) {
	testenv.DockerOnly(t) // a Pod asking for too much CPU waits unscheduled instead of failing
	id := startIdentity(t, withPool(2, func(c *config.Config) {
		c.Sandbox.DefaultCPU, c.Sandbox.MaxCPU = 64, 64
	}))
	u := newSandboxUser(t, id, "user_pool_broken")
	db := testenv.OpenSQL(t, string(id.cfg.Database.URL))
	var message string
	eventually(t, "the failure to be recorded", 30*time.Second, func() bool {
		return db.QueryRow(`SELECT message FROM pool_failures WHERE image = $1`, id.cfg.Sandbox.DefaultImage).Scan(&message) == nil
	})
	if !strings.Contains(message, "CPU") {
		t.Errorf("recorded failure %q does not say what the engine refused", message)
	}
	sb := u.create(t, `{"cpu":0.5}`)
	if sb.Start != "cold" || sb.Status != "running" {
		t.Fatalf("create while the pool cannot fill: start %s status %s", sb.Start, sb.Status)
	}
	if ready, _ := poolCounts(t, id); ready != 0 {
		t.Errorf("%d members ready from a pool that cannot fill", ready)
	}
}
