package migrations_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/migrations"
	"github.com/insien/orchestrator/providers"
)

func newMigrator(t *testing.T, url string) *migrations.Migrator {
	t.Helper()
	db, err := providers.NewDB(config.Database{URL: config.Secret(url), MaxOpenConns: 4, ConnectTimeout: 5e9})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m, err := migrations.New(db)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tables(t *testing.T, url string) string {
	t.Helper()
	db := testenv.OpenSQL(t, url)
	var names string
	err := db.QueryRow(`SELECT coalesce(string_agg(tablename, ',' ORDER BY tablename), '')
		FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'bun_%'`).Scan(&names)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// total is the number of embedded migrations.
func total(t *testing.T, m *migrations.Migrator) int {
	t.Helper()
	statuses, err := m.Status(context.Background())
	if err != nil || len(statuses) == 0 {
		t.Fatalf("Status = %v, %v", statuses, err)
	}
	return len(statuses)
}

func TestUpDownUp(t *testing.T) {
	ctx := context.Background()
	url := testenv.DatabaseURL(t)
	m := newMigrator(t, url)

	if err := m.CheckCurrent(ctx); !errors.Is(err, migrations.ErrSchemaBehind) {
		t.Fatalf("CheckCurrent on an empty database = %v, want ErrSchemaBehind", err)
	}
	all := total(t, m)
	steps := []struct {
		name       string
		run        func() ([]string, error)
		wantTables string
		wantNames  int
	}{
		{"up creates the schema", func() ([]string, error) { return m.Up(ctx) }, "api_keys,events,pool_failures,pool_members,sandboxes,templates,users,volumes,webhook_attempts,webhook_deliveries,webhook_endpoints", all},
		{"up again does nothing", func() ([]string, error) { return m.Up(ctx) }, "api_keys,events,pool_failures,pool_members,sandboxes,templates,users,volumes,webhook_attempts,webhook_deliveries,webhook_endpoints", 0},
		{"down removes it (the last group)", func() ([]string, error) { return m.Down(ctx) }, "", all},
		{"up restores it", func() ([]string, error) { return m.Up(ctx) }, "api_keys,events,pool_failures,pool_members,sandboxes,templates,users,volumes,webhook_attempts,webhook_deliveries,webhook_endpoints", all},
	}
	for _, step := range steps {
		names, err := step.run()
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if len(names) != step.wantNames {
			t.Errorf("%s: touched %v, want %d migrations", step.name, names, step.wantNames)
		}
		if got := tables(t, url); got != step.wantTables {
			t.Errorf("%s: tables %q, want %q", step.name, got, step.wantTables)
		}
	}
	if err := m.CheckCurrent(ctx); err != nil {
		t.Fatalf("CheckCurrent after up = %v", err)
	}
	statuses, err := m.Status(ctx)
	if err != nil || len(statuses) == 0 || !statuses[0].Applied {
		t.Fatalf("Status = %+v, %v", statuses, err)
	}
}

// TestConcurrentUp: two processes running `migrate up` at once apply each migration exactly once.
func TestConcurrentUp(t *testing.T) {
	url := testenv.DatabaseURL(t)
	const runners = 4
	results := make([][]string, runners)
	errs := make([]error, runners)
	var wg sync.WaitGroup
	for i := range runners {
		m := newMigrator(t, url)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = m.Up(context.Background())
		}()
	}
	wg.Wait()
	applied := 0
	for i := range runners {
		if errs[i] != nil {
			t.Fatalf("runner %d: %v", i, errs[i])
		}
		applied += len(results[i])
	}
	all := total(t, newMigrator(t, url))
	if applied != all {
		t.Fatalf("%d migrations applied in total, want each of the %d once: %v", applied, all, results)
	}
	db := testenv.OpenSQL(t, url)
	var rows int
	if err := db.QueryRow("SELECT count(*) FROM bun_migrations").Scan(&rows); err != nil || rows != all {
		t.Fatalf("bun_migrations has %d rows (%v), want %d", rows, err, all)
	}
}

// TestServeRefusesABehindSchema: the service will not start on an unmigrated database.
func TestServeRefusesABehindSchema(t *testing.T) {
	cfg := testenv.Config(t)
	a, err := testenv.TryStartApp(cfg)
	if err == nil {
		a.Stop(t)
		t.Fatal("the service started on an unmigrated database")
	}
	if !strings.Contains(err.Error(), "migrate up") {
		t.Fatalf("start-up error %q does not tell the operator to migrate", err)
	}
}

func TestCreateWritesAPair(t *testing.T) {
	dir := t.TempDir()
	paths, err := migrations.Create(dir, "add_widgets")
	if err != nil || len(paths) != 2 || !strings.HasSuffix(paths[0], "_add_widgets.tx.up.sql") || !strings.HasSuffix(paths[1], "_add_widgets.tx.down.sql") {
		t.Fatalf("Create = %v, %v", paths, err)
	}
	if _, err := migrations.Create(dir, "Bad Name!"); err == nil {
		t.Fatal("Create accepted an invalid name")
	}
}

// TestEngineTextsLeaveEndReason: rows whose failed start recorded the engine's error text (host
// paths, cgroups, returned by GET) keep only the code once 20261202000001 is applied.
func TestEngineTextsLeaveEndReason(t *testing.T) {
	ctx := context.Background()
	url := testenv.DatabaseURL(t)
	m := newMigrator(t, url)
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	// Back to the schema before it, as on a server that ran the previous release: it and every
	// later migration rolled back, newest first.
	const name = "20261202000001"
	downs, err := filepath.Glob("*.tx.down.sql")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(downs)
	slices.Reverse(downs)
	db := testenv.OpenSQL(t, url)
	var undone []string
	for _, file := range downs {
		migration, _, _ := strings.Cut(file, "_")
		if migration < name {
			break
		}
		down, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{string(down), "DELETE FROM bun_migrations WHERE name = '" + migration + "'"} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		undone = append(undone, migration)
	}
	if _, err := db.Exec("INSERT INTO users (id) VALUES ('00000000-0000-0000-0000-000000000001')"); err != nil {
		t.Fatal(err)
	}
	for _, reason := range []string{
		"docker: start 4dbb5a542dfb: Error response from daemon: failed to create shim task: OCI runtime create failed: write /sys/fs/cgroup/cpu/docker/x/cpu.cfs_quota_us: invalid argument",
		"expired", "runtime_lost", "process_exited",
	} {
		if _, err := db.Exec(`INSERT INTO sandboxes (user_id, image, status, end_reason, cpu, memory_mb, timeout_seconds, expires_at)
			VALUES ('00000000-0000-0000-0000-000000000001', 'img', 'failed', $1, 1, 64, 60, now())`, reason); err != nil {
			t.Fatal(err)
		}
	}
	if applied, err := m.Up(ctx); err != nil || len(applied) != len(undone) {
		t.Fatalf("Up = %v, %v; want %v", applied, err, undone)
	}
	var got string
	if err := db.QueryRow("SELECT string_agg(end_reason, ',' ORDER BY end_reason) FROM sandboxes").Scan(&got); err != nil ||
		got != "expired,process_exited,runtime_lost,start_failed" {
		t.Errorf("end reasons after the migration: %q (%v)", got, err)
	}
}
