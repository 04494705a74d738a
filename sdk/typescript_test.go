package sdk_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/testenv"
)

// TestTypeScriptSDK builds sdk/typescript as its users get it (npm ci, tsc), fails when its
// generated types are stale against openapi.yaml, and runs its node --test suite against the whole
// service on a loopback port: INSIEN_API_URL and INSIEN_API_KEY are what new Insien() reads by
// default, INSIEN_TEST_SESSION_TOKEN a Clerk session token for the key tests.
func TestTypeScriptSDK(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: the TypeScript SDK needs Node.js 18.17 or newer; run `go tool task deps` (Debian packages nodejs and npm)", tool)
		}
	}
	out, err := exec.Command("node", "-p", "process.versions.node.split('.')[0]").Output()
	if err != nil {
		t.Fatalf("node -p: %v", err)
	}
	// 18: Debian 12's nodejs is 18.20, and the SDK runs on it (package.json engines).
	if major, err := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || major < 18 {
		t.Fatalf("node %s: the TypeScript SDK needs Node.js 18.17 or newer; run `go tool task deps`", out)
	}

	// --ignore-scripts: the build runs once, below, rather than again from the package's prepare.
	npm(t, nil, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts")
	npm(t, nil, "run", "build")
	if _, err := runNPM(t, nil, "run", "generate", "--", "--check"); err != nil {
		t.Fatalf("sdk/typescript/src/api.gen.ts is stale: openapi.yaml changed since it was generated; run `npm run generate` in sdk/typescript\n%v", err)
	}

	svc := testenv.StartService(t, nil)
	env := append(svc.ClientEnv(), "INSIEN_TEST_SESSION_TOKEN="+svc.Session(t))
	t.Log(npm(t, env, "test"))
}

// npm runs npm in sdk/typescript and answers its output; a failure fails the test with it.
func npm(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, err := runNPM(t, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runNPM runs npm in sdk/typescript with env added to the test's environment and logs how long it
// took; the error carries the command and its output.
func runNPM(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("npm", args...)
	cmd.Dir = "typescript"
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1", "npm_config_update_notifier=false"), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	name := "npm " + strings.Join(args, " ")
	t.Logf("%s: %s", name, time.Since(start).Round(time.Millisecond))
	if err != nil {
		return string(out), fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	return string(out), nil
}
