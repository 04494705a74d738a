package main_test

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/testenv"
)

// TestKillDuringCreatesThenRestart: kill -9 while creates are in flight (cold, or claiming warm
// pool members), restart, and the restarted service leaves no orphaned container (or Pod), no row
// stuck mid-transition, and no member half claimed: every workload is a running sandbox or a
// pool member, never both, and the pool fills back to its target.
func TestKillDuringCreatesThenRestart(t *testing.T) {
	for _, pool := range []int{0, 3} {
		t.Run(fmt.Sprintf("warm pool of %d", pool), func(t *testing.T) { killDuringCreatesThenRestart(t, pool) })
	}
}

func killDuringCreatesThenRestart(t *testing.T, pool int) {
	cfg := testenv.Config(t)
	port := testenv.FreePort(t)
	dbURL := cfg.Database.URL.Reveal()
	env := testenv.RuntimeEnv(cfg)
	maps.Copy(env, map[string]string{
		"DATABASE_URL":          dbURL,
		"REDIS_URL":             cfg.Redis.URL.Reveal(),
		"PORT":                  fmt.Sprint(port),
		"JWT_SECRET":            "crash-test-secret",
		"ORCH_APP_INSTANCE":     "crash-test",
		"ORCH_HTTP_DRAIN_DELAY": "0s",
		"ORCH_LOG_LEVEL":        "warn",
		// Members the size of the creates, so that on Kubernetes too every create can claim one.
		"ORCH_SANDBOX_WARM_POOL_ENABLED":           fmt.Sprint(pool > 0),
		"ORCH_SANDBOX_WARM_POOL_SIZE":              fmt.Sprint(pool),
		"ORCH_SANDBOX_DEFAULT_MEMORY_MB":           "32",
		"ORCH_SANDBOX_WARM_POOL_REFILL_PER_SECOND": "20",
	})
	if out, err := command(t, env, "migrate", "up").CombinedOutput(); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out)
	}
	out, err := command(t, env, "keys", "create", "--email", "crash@example.com", "--name", "crash").Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	key := strings.TrimSpace(string(out))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	serve := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := command(t, env, "serve")
		logs := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, "ready", 20*time.Second, func() bool {
			resp, err := http.Get(base + "/ready")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		return cmd, logs
	}
	db := testenv.OpenSQL(t, dbURL)
	count := func(query string) int {
		var n int
		if err := db.QueryRow(query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Crash until the crash leaves debris (a pending row): killing just after every create
	// finished would prove nothing.
	for attempt := 1; count("SELECT count(*) FROM sandboxes WHERE status = 'pending'") == 0; attempt++ {
		if attempt > 5 {
			t.Fatal("could not kill the service while a create was in flight")
		}
		first, _ := serve()
		testenv.Eventually(t, "the pool to fill", 60*time.Second, func() bool {
			return count("SELECT count(*) FROM pool_members WHERE status = 'ready'") == pool
		})
		var wg sync.WaitGroup
		client := &http.Client{Timeout: 30 * time.Second}
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", base+"/api/sandboxes", strings.NewReader(`{"memory_mb":32}`))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
		}
		// Beyond the members: a create made one.
		testenv.Eventually(t, "a first sandbox container", 20*time.Second, func() bool { return len(testenv.Workloads(t, cfg)) > pool })
		if err := first.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = first.Wait()
		wg.Wait()
	}

	second, logs := serve()
	defer func() {
		_ = second.Process.Signal(os.Interrupt)
		_ = second.Wait()
	}()

	if stuck := count("SELECT count(*) FROM sandboxes WHERE status IN ('pending', 'stopping')"); stuck != 0 {
		t.Errorf("%d rows stuck in pending or stopping after restart\n%s", stuck, logs)
	}
	names := func(query string) []string {
		rows, err := db.Query(query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := []string{}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			out = append(out, name)
		}
		return out
	}
	if pool > 0 {
		testenv.Eventually(t, "the pool to fill back", 60*time.Second, func() bool {
			return count("SELECT count(*) FROM pool_members WHERE status = 'ready'") == pool &&
				count("SELECT count(*) FROM pool_members") == pool
		})
		out, err := command(t, env, "pool", "status").Output()
		want := fmt.Sprintf("%s  %d       %d      0         -", cfg.Sandbox.DefaultImage, pool, pool)
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("pool status: %v\n%s\nwant a line %q", err, out, want)
		}
	}
	want := names(`SELECT 'sbx-' || id FROM sandboxes WHERE status = 'running'
		UNION ALL SELECT 'sbx-' || id FROM pool_members ORDER BY 1`)
	containers := testenv.Workloads(t, cfg)
	if fmt.Sprint(containers) != fmt.Sprint(want) {
		t.Fatalf("containers %v do not match running sandboxes and pool members %v\n%s", containers, want, logs)
	}
}
