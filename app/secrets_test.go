package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
)

// TestNoSecretReachesTheLog: with every secret set (and its dependencies unreachable, so their
// errors are logged), nothing the service logs at any level contains a secret.
func TestNoSecretReachesTheLog(t *testing.T) {
	secrets := map[string]string{
		"database password": "pg-pass-d41d8cd9",
		"redis password":    "redis-pass-8f00b204",
		"clerk secret":      "sk_test_e9800998ecf8",
		"webhook secret":    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"jwt secret":        "jwt-secret-427e0ce4",
		"secrets key":       "secrets-key-1b2a3c4d",
	}
	cfg := testenv.Config(t)
	cfg.Database.URL = config.Secret(fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/x?sslmode=disable", secrets["database password"], testenv.FreePort(t)))
	cfg.Redis.URL = config.Secret(fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", secrets["redis password"], testenv.FreePort(t)))
	cfg.Clerk.SecretKey = config.Secret(secrets["clerk secret"])
	cfg.Clerk.APIURL = fmt.Sprintf("http://127.0.0.1:%d/v1", testenv.FreePort(t))
	cfg.Clerk.WebhookSecret = config.Secret(secrets["webhook secret"])
	cfg.Auth.JWTSecret = config.Secret(secrets["jwt secret"])
	cfg.Secrets.Key = config.Secret(secrets["secrets key"])
	cfg.Log.Level = "debug"

	core, logs := observer.New(zapcore.DebugLevel)
	a := testenv.StartApp(t, cfg, fx.Decorate(func() *zap.Logger { return zap.New(core) }))
	a.Do(t, "GET", "/ready", "", nil)
	a.Do(t, "GET", "/api/users/me", "", map[string]string{"Authorization": "Bearer " + secrets["clerk secret"]})
	a.Do(t, "POST", "/api/sandboxes", `{"env":{"K":"v"}}`, map[string]string{"X-API-Key": "isk_" + secrets["jwt secret"]})
	if r := a.Do(t, "GET", "/health", "", nil); r.Status != http.StatusOK {
		t.Fatalf("health %d", r.Status)
	}
	a.Stop(t)

	if logs.Len() == 0 {
		t.Fatal("nothing was logged: the test would prove nothing")
	}
	for _, entry := range logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		for what, secret := range secrets {
			if strings.Contains(line, secret) {
				t.Errorf("the %s reached the log: %s", what, line)
			}
		}
	}
}
