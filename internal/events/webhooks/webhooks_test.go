package webhooks

import (
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
)

// TestURLRules: http is accepted in development or with allow_http, https always; literal
// refused addresses are accepted only with allow_private_targets.
func TestURLRules(t *testing.T) {
	cfg := config.Default().Webhooks
	private := cfg
	private.AllowPrivateTargets = true
	optIn := cfg
	optIn.AllowHTTP = true
	tests := []struct {
		name string
		svc  *Service
		url  string
		ok   bool
	}{
		{"production https", NewService(Params{Config: cfg, App: config.App{Env: "production"}}), "https://hooks.example.com/x", true},
		{"production http", NewService(Params{Config: cfg, App: config.App{Env: "production"}}), "http://hooks.example.com/x", false},
		{"development http", NewService(Params{Config: cfg, App: config.App{Env: "development"}}), "http://hooks.example.com/x", true},
		{"allow_http", NewService(Params{Config: optIn, App: config.App{Env: "production"}}), "http://hooks.example.com/x", true},
		{"metadata", NewService(Params{Config: cfg, App: config.App{Env: "development"}}), "http://169.254.169.254/latest", false},
		{"CGNAT", NewService(Params{Config: cfg}), "https://100.100.100.200/", false},
		{"IPv6 unique local", NewService(Params{Config: cfg}), "https://[fd00:ec2::254]/", false},
		{"loopback allowed by config", NewService(Params{Config: private}), "https://127.0.0.1:8443/x", true},
	}
	for _, tt := range tests {
		_, err := tt.svc.checkURL(tt.url)
		if e, isAPI := apierror.As(err); (err == nil) != tt.ok || (err != nil && (!isAPI || e.Field != "url")) {
			t.Errorf("%s: checkURL(%s) = %v, want ok=%v", tt.name, tt.url, err, tt.ok)
		}
	}
}

// TestBackoff: each wait is within [step/2, step] where the step doubles from backoff_base up
// to backoff_max.
func TestBackoff(t *testing.T) {
	cfg := config.Default().Webhooks
	for n, step := range map[int]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 5: 80 * time.Second, 12: time.Hour, 100: time.Hour} {
		for range 100 {
			if d := Backoff(cfg, n); d < step/2 || d > step {
				t.Fatalf("Backoff after %d failures = %s, want within [%s, %s]", n, d, step/2, step)
			}
		}
	}
}
