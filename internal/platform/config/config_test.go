package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/platform/config"
)

// env builds a LookupEnv from pairs, standing in for the process environment.
func env(pairs map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := pairs[name]
		return v, ok
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDocumentedConfigMatchesDefaults(t *testing.T) {
	cfg, err := config.Load(config.Options{File: "../../../config.yaml", DotEnv: os.DevNull, LookupEnv: env(nil)})
	if err != nil {
		t.Fatalf("config.yaml does not load: %v", err)
	}
	want := config.Default()
	if !reflect.DeepEqual(*cfg, want) {
		t.Fatalf("config.yaml disagrees with config.Default():\n got %+v\nwant %+v", *cfg, want)
	}
}

func TestEveryKeyIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range config.Keys() {
		leaf := key[strings.LastIndex(key, ".")+1:]
		if !strings.Contains(string(doc), leaf+":") {
			t.Errorf("config.yaml does not document %s", key)
		}
	}
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range config.Keys() {
		if !strings.Contains(string(readme), "| `"+key+"` |") {
			t.Errorf("README.md's configuration table does not list %s", key)
		}
	}
	example, err := os.ReadFile("../../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range config.Keys() {
		names := config.EnvNames(key)
		if !strings.Contains(string(example), names[len(names)-1]) {
			t.Errorf(".env.example does not list %s (%s)", key, names[len(names)-1])
		}
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	yaml := writeFile(t, dir, "config.yaml", "http:\n  port: 4000\nredis:\n  url: redis://yaml:6379\nlog:\n  level: warn\n")
	dotenv := writeFile(t, dir, ".env", "ORCH_HTTP_PORT=5000\nREDIS_URL=redis://dotenv:6379\nJWT_SECRET=from-dotenv\n")

	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c *config.Config)
	}{
		{"yaml beats defaults", nil, func(t *testing.T, c *config.Config) {
			if c.Log.Level != "warn" {
				t.Errorf("log.level = %q, want warn from YAML", c.Log.Level)
			}
		}},
		{".env beats yaml (prefixed name)", nil, func(t *testing.T, c *config.Config) {
			if c.HTTP.Port != 5000 {
				t.Errorf("http.port = %d, want 5000 from .env", c.HTTP.Port)
			}
		}},
		{".env beats yaml (unprefixed name)", nil, func(t *testing.T, c *config.Config) {
			if c.Redis.URL != "redis://dotenv:6379" {
				t.Errorf("redis.url = %q, want the .env value", c.Redis.URL.Reveal())
			}
		}},
		{"environment beats .env (unprefixed PORT)", map[string]string{"PORT": "6000"}, func(t *testing.T, c *config.Config) {
			if c.HTTP.Port != 6000 {
				t.Errorf("http.port = %d, want 6000 from PORT", c.HTTP.Port)
			}
		}},
		{"prefixed beats unprefixed in the same source", map[string]string{"PORT": "6000", "ORCH_HTTP_PORT": "7000"}, func(t *testing.T, c *config.Config) {
			if c.HTTP.Port != 7000 {
				t.Errorf("http.port = %d, want 7000 from ORCH_HTTP_PORT", c.HTTP.Port)
			}
		}},
		{"legacy names reach their keys", map[string]string{
			"DATABASE_URL": "postgres://db/x", "CLERK_SECRET_KEY": "sk_test", "CLERK_JWT_KEY": "pem",
			"CLERK_API_URL": "http://127.0.0.1:1/v1", "CLERK_WEBHOOK_SECRET": "whsec_x", "DOCKER_HOST": "unix:///d.sock",
		}, func(t *testing.T, c *config.Config) {
			got := []string{c.Database.URL.Reveal(), c.Clerk.SecretKey.Reveal(), c.Clerk.JWTKey, c.Clerk.APIURL,
				c.Clerk.WebhookSecret.Reveal(), c.Runtime.DockerHost, c.Auth.JWTSecret.Reveal()}
			want := []string{"postgres://db/x", "sk_test", "pem", "http://127.0.0.1:1/v1", "whsec_x", "unix:///d.sock", "from-dotenv"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		}},
		{"durations, lists and nested keys from env", map[string]string{
			"ORCH_HTTP_REQUEST_TIMEOUT": "10s", "ORCH_HTTP_CORS_ALLOWED_ORIGINS": "https://a.example,https://b.example",
		}, func(t *testing.T, c *config.Config) {
			if c.HTTP.RequestTimeout != 10*time.Second {
				t.Errorf("request_timeout = %v", c.HTTP.RequestTimeout)
			}
			if !reflect.DeepEqual(c.HTTP.CORS.AllowedOrigins, []string{"https://a.example", "https://b.example"}) {
				t.Errorf("allowed_origins = %q", c.HTTP.CORS.AllowedOrigins)
			}
		}},
		{"development drops the drain delay unless set", map[string]string{"ORCH_ENV": "development"}, func(t *testing.T, c *config.Config) {
			if c.HTTP.DrainDelay != 0 {
				t.Errorf("drain_delay = %v, want 0 in development", c.HTTP.DrainDelay)
			}
		}},
		{"an explicit drain delay survives development", map[string]string{"ORCH_ENV": "development", "ORCH_HTTP_DRAIN_DELAY": "2s"}, func(t *testing.T, c *config.Config) {
			if c.HTTP.DrainDelay != 2*time.Second {
				t.Errorf("drain_delay = %v, want 2s", c.HTTP.DrainDelay)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(config.Options{File: yaml, DotEnv: dotenv, LookupEnv: env(tt.env)})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestInvalidConfigNamesTheKey(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     map[string]string
		wantKey string
	}{
		{"unknown yaml key", "http:\n  prot: 3000\n", nil, "http.prot"},
		{"unknown section", "htttp:\n  port: 3000\n", nil, "htttp.port"},
		{"non-numeric port from env", "", map[string]string{"PORT": "abc"}, "http.port"},
		{"port out of range", "http:\n  port: 70000\n", nil, "http.port"},
		{"bad duration", "http:\n  request_timeout: soon\n", nil, "http.request_timeout"},
		{"write timeout not above request timeout", "http:\n  request_timeout: 90s\n", nil, "http.write_timeout"},
		{"bad log level", "", map[string]string{"ORCH_LOG_LEVEL": "loud"}, "log.level"},
		{"database url scheme", "", map[string]string{"DATABASE_URL": "mysql://x"}, "database.url"},
		{"redis url scheme", "", map[string]string{"REDIS_URL": "http://x"}, "redis.url"},
		{"bad env name", "", map[string]string{"ORCH_ENV": "staging"}, "app.env"},
		{"default image not allowed", "sandbox:\n  allowed_images: [other]\n", nil, "sandbox.default_image"},
		{"token lifetime unbounded", "", map[string]string{"ORCH_CLERK_MAX_TOKEN_LIFETIME": "0s"}, "clerk.max_token_lifetime"},
		{"unknown driver", "", map[string]string{"ORCH_RUNTIME_DRIVER": "nomad"}, "runtime.driver"},
		{"unknown pull policy", "runtime:\n  kubernetes:\n    image_pull_policy: Sometimes\n", nil, "runtime.kubernetes.image_pull_policy"},
		{"toleration operator", "runtime:\n  kubernetes:\n    tolerations: [{key: a, operator: Maybe}]\n", nil, "runtime.kubernetes.tolerations"},
		{"toleration effect", "runtime:\n  kubernetes:\n    tolerations: [{key: a, effect: Never}]\n", nil, "runtime.kubernetes.tolerations"},
		{"metrics address without a port", "", map[string]string{"ORCH_METRICS_ADDR": "localhost"}, "metrics.addr"},
		{"tracing endpoint without a scheme", "", map[string]string{"ORCH_TRACING_ENDPOINT": "otel-collector:4318"}, "tracing.endpoint"},
		{"tracing endpoint over grpc", "tracing:\n  endpoint: grpc://otel-collector:4317\n", nil, "tracing.endpoint"},
		{"sample ratio above one", "", map[string]string{"ORCH_TRACING_SAMPLE_RATIO": "1.5"}, "tracing.sample_ratio"},
		{"sample ratio not a number", "", map[string]string{"ORCH_TRACING_SAMPLE_RATIO": "half"}, "tracing.sample_ratio"},
		{"empty service name", "", map[string]string{"ORCH_TRACING_SERVICE_NAME": " "}, "tracing.service_name"},
		{"empty sandbox namespace", "", map[string]string{"ORCH_RUNTIME_KUBERNETES_NAMESPACE": " "}, "runtime.kubernetes.namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "config.yaml", tt.yaml)
			_, err := config.Load(config.Options{File: path, DotEnv: os.DevNull, LookupEnv: env(tt.env)})
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantKey) {
				t.Errorf("error %q does not name %s", msg, tt.wantKey)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans several lines: %q", msg)
			}
		})
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	s := config.Secret("sk_live_very_secret")
	for _, rendered := range []string{s.String(), fmt.Sprintf("%v %+v %s", s, s, s)} {
		if strings.Contains(rendered, "very_secret") {
			t.Errorf("secret rendered as %q", rendered)
		}
	}
	if s.Reveal() != "sk_live_very_secret" {
		t.Error("Reveal lost the value")
	}
}
