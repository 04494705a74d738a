// Package testenv gives tests real dependencies: an isolated Postgres database, a Redis database
// index of their own and the test Docker engine, all from the stack that `go tool task test`
// starts (scripts/stack.sh). Without that stack, tests fail and say how to run them.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"

	"github.com/insien/orchestrator/internal/platform/config"
)

// Env names exported by `scripts/stack.sh env test`.
const (
	EnvDatabaseURL = "ORCH_TEST_DATABASE_URL"
	EnvRedisURL    = "ORCH_TEST_REDIS_URL"
	EnvDockerHost  = "ORCH_TEST_DOCKER_HOST"
	EnvImage       = "ORCH_TEST_IMAGE"
	EnvPGBinDir    = "ORCH_TEST_PG_BINDIR"
	EnvRedisServer = "ORCH_TEST_REDIS_SERVER"
)

// Require returns the value of an ORCH_TEST_* variable or fails the test with instructions.
func Require(t testing.TB, name string) string {
	t.Helper()
	value := os.Getenv(name)
	if value == "" {
		t.Fatalf("%s is not set: run the suite with `go tool task test`, which starts the test stack", name)
	}
	return value
}

// Image is the sandbox image built by the test stack.
func Image(t testing.TB) string {
	t.Helper()
	if image := os.Getenv(EnvImage); image != "" {
		return image
	}
	return "insien/sandbox:busybox"
}

// DatabaseURL creates an empty database for this test and drops it afterwards.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	admin := Require(t, EnvDatabaseURL)
	name := "orch_test_" + randomHex(6)
	execSQL(t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() { execQuiet(admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("%s: %v", EnvDatabaseURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// RedisURL returns a Redis URL with a database index no other running test uses, flushed.
func RedisURL(t testing.TB) string {
	t.Helper()
	base := Require(t, EnvRedisURL)
	opts, err := redis.ParseURL(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvRedisURL, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin := redis.NewClient(opts)
	defer admin.Close()
	// The test stack runs Redis with 128 databases; 0 holds the allocator.
	n, err := admin.Incr(ctx, "testenv:next-db").Result()
	if err != nil {
		t.Fatalf("allocating a Redis database: %v", err)
	}
	opts.DB = int(1 + n%127)
	client := redis.NewClient(opts)
	defer client.Close()
	if err := client.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flushing Redis database %d: %v", opts.DB, err)
	}
	u, _ := url.Parse(base)
	u.Path = fmt.Sprintf("/%d", opts.DB)
	return u.String()
}

// Config is the default configuration pointed at a fresh database and Redis index, listening on
// a free port, with quiet logs and no drain delay.
func Config(t testing.TB) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Database.URL = config.Secret(DatabaseURL(t))
	cfg.Redis.URL = config.Secret(RedisURL(t))
	cfg.HTTP.Port = 0
	cfg.HTTP.Host = "127.0.0.1"
	cfg.HTTP.DrainDelay = 0
	cfg.Metrics.Addr = "127.0.0.1:0" // tests run many services at once
	cfg.Log.Level = "warn"
	cfg.Health.RetryInterval = 200 * time.Millisecond
	cfg.Health.CheckTimeout = time.Second
	cfg.Auth.JWTSecret = "test-jwt-secret-that-is-long-enough-0123456789"
	cfg.Runtime.Cluster = "test-" + randomHex(4)
	cfg.Runtime.StopGrace = 2 * time.Second
	// Tests poll; the tests of rate limiting set their own limits.
	cfg.RateLimit.PrincipalPerMin, cfg.RateLimit.PrincipalBurst = 60000, 10000
	cfg.App.Instance = "test-instance-" + randomHex(3)
	// A pool starts containers at once and takes capacity: the tests of pools turn it on.
	cfg.Sandbox.WarmPool.Enabled = false
	cfg.Volumes.Dir = volumesDir(t)
	useDriver(t, &cfg)
	return &cfg
}

// volumesDir is a directory for the test's volumes; whatever they left mounted is unmounted when
// the test ends (volumes outlive the service by design), before the directory is removed.
func volumesDir(t testing.TB) string {
	dir := t.TempDir()
	t.Cleanup(func() {
		mounts, _ := filepath.Glob(filepath.Join(dir, "mounts", "*"))
		for _, m := range mounts {
			_ = exec.Command("umount", m).Run()
		}
	})
	return dir
}

func execSQL(t testing.TB, dsn, query string) {
	t.Helper()
	if err := execQuiet(dsn, query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func execQuiet(dsn, query string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("parse the database URL: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, query); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return nil
}

// OpenSQL opens a plain database/sql handle for assertions on rows.
func OpenSQL(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { db.Close() })
	return db
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))
}

// OpenRedis opens a client for assertions on Redis state.
func OpenRedis(t testing.TB, rawURL string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	return client
}
