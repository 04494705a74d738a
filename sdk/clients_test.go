package sdk_test

import (
	"os"
	"os/exec"
	"testing"

	"github.com/insien/orchestrator/internal/testenv"
)

// TestGoSDK runs the Go SDK's own tests and runnable examples (a separate module, so they cannot
// start the service themselves) against the whole service on a loopback port, as a user with an
// API key: INSIEN_API_URL and INSIEN_API_KEY are what client.New reads by default.
func TestGoSDK(t *testing.T) {
	svc := testenv.StartService(t, nil)
	cmd := exec.Command("go", "test", "-race", "-count=1", "./...")
	cmd.Dir = "go"
	cmd.Env = append(os.Environ(), svc.ClientEnv()...)
	cmd.Env = append(cmd.Env, "INSIEN_TEST_SESSION_TOKEN="+svc.Session(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test ./... in sdk/go: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
