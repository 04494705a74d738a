package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
)

// TestReadinessFollowsDependencies stops and restarts real Redis and Postgres servers: liveness
// stays 200 throughout, readiness names the missing dependency and recovers when it returns.
func TestReadinessFollowsDependencies(t *testing.T) {
	redisServer := testenv.StartRedis(t)
	pgServer := testenv.StartPostgres(t)

	cfg := testenv.Config(t)
	cfg.Redis.URL = config.Secret(redisServer.URL())
	cfg.Database.URL = config.Secret(pgServer.URL())
	testenv.Migrate(t, cfg)
	a := testenv.StartApp(t, cfg)

	ready := func() testenv.Response { return a.Do(t, "GET", "/ready", "", nil) }
	testenv.Eventually(t, "ready", 15*time.Second, func() bool { return ready().Status == http.StatusOK })

	tests := []struct {
		dependency string
		stop       func()
		start      func()
	}{
		{"redis", redisServer.Stop, redisServer.Start},
		{"postgres", pgServer.Stop, pgServer.Start},
	}
	for _, tt := range tests {
		t.Run(tt.dependency, func(t *testing.T) {
			tt.stop()
			testenv.Eventually(t, tt.dependency+" to be reported unavailable", 15*time.Second, func() bool {
				r := ready()
				return r.Status == http.StatusServiceUnavailable && strings.Contains(r.Body, `"`+tt.dependency+`":"`) &&
					!strings.Contains(r.Body, `"`+tt.dependency+`":"ok"`)
			})
			if got := a.Do(t, "GET", "/health", "", nil).Status; got != http.StatusOK {
				t.Errorf("/health = %d while %s is down, want 200", got, tt.dependency)
			}
			tt.start()
			testenv.Eventually(t, "ready again after "+tt.dependency+" returns", 15*time.Second, func() bool { return ready().Status == http.StatusOK })
		})
	}
}

// TestStartsBeforeItsDependencies: with Redis down at start-up the process still starts, reports
// not ready, and becomes ready once Redis appears.
func TestStartsBeforeItsDependencies(t *testing.T) {
	redisServer := testenv.StartRedis(t)
	redisServer.Stop()
	cfg := testenv.Config(t)
	cfg.Redis.URL = config.Secret(redisServer.URL())
	testenv.Migrate(t, cfg)
	a := testenv.StartApp(t, cfg)

	if r := a.Do(t, "GET", "/readyz", "", nil); r.Status != http.StatusServiceUnavailable || strings.Contains(r.Body, `"redis":"ok"`) {
		t.Fatalf("readyz with Redis down = %d %s", r.Status, r.Body)
	}
	redisServer.Start()
	testenv.Eventually(t, "ready once Redis starts", 15*time.Second, func() bool { return a.Do(t, "GET", "/readyz", "", nil).Status == http.StatusOK })
}
