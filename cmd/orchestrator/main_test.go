package main_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/testenv"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orchestrator-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "orchestrator")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// command runs the binary in an empty directory with only the given environment.
func command(t *testing.T, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = t.TempDir()
	// The metrics listener on any free port: replicas of one test run side by side (env may say otherwise).
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "ORCH_METRICS_ADDR=127.0.0.1:0"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

func TestBadConfigStopsStartUpNamingTheKey(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     map[string]string
		wantKey string
	}{
		{"unknown key", "http:\n  prot: 1\n", nil, "http.prot"},
		{"bad value", "", map[string]string{"ORCH_HTTP_PORT": "not-a-port"}, "http.port"},
		{"bad legacy value", "", map[string]string{"PORT": "99999"}, "http.port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := command(t, tt.env, "serve")
			if err := os.WriteFile(filepath.Join(cmd.Dir, "config.yaml"), []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
				t.Fatalf("exit = %v, want code 1", err)
			}
			out := strings.TrimSpace(stderr.String())
			if strings.Count(out, "\n") != 0 || !strings.Contains(out, tt.wantKey) {
				t.Fatalf("stderr should be one line naming %s, got:\n%s", tt.wantKey, out)
			}
		})
	}
}

// TestSIGTERM: the real process flips readiness to 503 at once, keeps serving through the drain,
// and exits 0.
func TestSIGTERM(t *testing.T) {
	port := testenv.FreePort(t)
	env := map[string]string{
		"DATABASE_URL":                   testenv.DatabaseURL(t),
		"REDIS_URL":                      testenv.RedisURL(t),
		"PORT":                           fmt.Sprint(port),
		"ORCH_HTTP_DRAIN_DELAY":          "2s",
		"JWT_SECRET":                     "sigterm-test-secret",
		"ORCH_LOG_LEVEL":                 "warn",
		"DOCKER_HOST":                    os.Getenv(testenv.EnvDockerHost),
		"ORCH_SANDBOX_WARM_POOL_ENABLED": "false", // no workloads but the test's own
	}
	if out, err := command(t, env, "migrate", "up").CombinedOutput(); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out)
	}
	cmd := command(t, env, "serve")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	status := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testenv.Eventually(t, "ready", 20*time.Second, func() bool { return status("/ready") == http.StatusOK })

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "readiness to fail after SIGTERM", 20*time.Second, func() bool { return status("/ready") == http.StatusServiceUnavailable })
	if got := status("/health"); got != http.StatusOK {
		t.Errorf("/health during drain = %d, want 200", got)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("still running 30s after SIGTERM\n%s", logs.String())
	}
}

func TestVersionAndUsage(t *testing.T) {
	out, err := command(t, nil, "version").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("version: %q %v", out, err)
	}
	err = command(t, nil, "frobnicate").Run()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 2 {
		t.Fatalf("unknown command exit = %v, want 2", err)
	}
}
