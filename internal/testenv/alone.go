package testenv

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// envAlone names the one test a process of the test binary runs, for InOwnProcess.
const envAlone = "ORCH_TEST_ALONE"

// InOwnProcess runs the calling top-level test, and nothing else, in a new process of the test
// binary, and reports whether the caller is that process: there the test goes on; in the parent,
// which runs in parallel with the package's other tests and only reports the child's outcome, it
// returns at once. It is for tests that measure their own process (its heap, its allocations):
// the tests running beside them in one process would distort that, and running them alone, before
// the parallel tests, would make the package wait for them.
//
//	if !testenv.InOwnProcess(t) {
//		return
//	}
func InOwnProcess(t *testing.T) bool {
	t.Helper()
	if strings.Contains(t.Name(), "/") {
		t.Fatalf("InOwnProcess is for top-level tests, not %s", t.Name())
	}
	if os.Getenv(envAlone) == t.Name() {
		return true
	}
	t.Parallel()
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	if deadline, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(deadline).Round(time.Second).String())
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), envAlone+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a process of its own: %v\n%s", t.Name(), err, out)
	}
	t.Logf("%s in a process of its own:\n%s", t.Name(), out)
	return false
}
