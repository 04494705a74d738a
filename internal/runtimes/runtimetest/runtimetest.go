// Package runtimetest is the driver-neutral conformance suite of runtimes.Runtime and
// runtimes.Interactive: one set of tests that every driver (Docker, Kubernetes) passes against a
// real engine, so that the drivers cannot drift apart. A driver's test plugs itself in with a
// Harness and calls Run; what is true of one driver only (its hardening as its engine reports
// it, its engine's events) stays in that driver's own tests.
package runtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Driver is what the suite tests: a runtime that is also interactive.
type Driver interface {
	runtimes.Runtime
	runtimes.Interactive
}

// Options are the driver settings that some tests need, in the suite's terms; Harness.New maps
// them onto the driver's own options. Zero values are the driver's defaults.
type Options struct {
	// Cluster is the driver's cluster label (runtime.cluster): the suite sets it to the test's
	// Env.Cluster, whatever a test passes. A driver that scopes itself to one cluster (the
	// Kubernetes driver labels its Pods and NetworkPolicy with it) must be built with it.
	Cluster   string
	StopGrace time.Duration // SIGTERM-to-SIGKILL delay when Stop is given none
	// ReadOnlyRoot: the image's filesystem is read-only; /tmp and the work directory are
	// writable mounts of TmpfsSizeMB each, charged to the sandbox's memory.
	ReadOnlyRoot bool
	TmpfsSizeMB  int64
	Log          *zap.Logger // nil: no logging
}

// Harness plugs a driver into the suite.
type Harness struct {
	// New builds a driver for the test, reachable (its Ping succeeds), and releases it at the
	// test's end. Its sandboxes run with the driver's defaults but for opts; in particular no
	// network and /workspace as the work directory.
	New func(t *testing.T, opts Options) Driver
	// Image is the sandboxes' image: a busybox with its applets (sh, head, tr, seq, xargs, ps,
	// sha256sum, stty, ...) whose default command keeps running and exits 0 on SIGTERM.
	Image string
	// Run runs argv in a running sandbox by the runtime's own means, not through the driver under
	// test, and returns its exit status and its stdout and stderr together: for a test's setup and
	// for checks that must not trust the driver (which processes are left, what a file holds).
	Run func(t *testing.T, id string, argv ...string) (code int, output string)
}

// Run runs the whole suite, one subtest per behaviour. Tests of what a driver cannot do at all
// (runtimes.Capabilities) check that it says so instead.
func Run(t *testing.T, h Harness) {
	for _, c := range []struct {
		name string
		test func(*testing.T, *Env)
	}{
		{"Lifecycle", testLifecycle},
		{"ExitCodeAndCommand", testExitCodeAndCommand},
		{"PauseResume", testPauseResume},
		{"UnenforceableLimits", testUnenforceableLimits},
		{"MissingSandbox", testMissingSandbox},
		{"List", testList},
		{"CreateSameName", testCreateSameName},
		{"EnvValuesAreNotLogged", testEnvValuesAreNotLogged},
		{"Watch", testWatch},
		{"Exec", testExec},
		{"ExecTimeoutKillsProcessTree", testExecTimeoutKillsProcessTree},
		{"ExecCancelKillsProcessTree", testExecCancelKillsProcessTree},
		{"ExecOutputCap", testExecOutputCap},
		{"ExecStreamsIncrementally", testExecStreamsIncrementally},
		{"ExecNotRunning", testExecNotRunning},
		{"ExecWorkDir", testExecWorkDir},
		{"ExecOOMKilled", testExecOOMKilled},
		{"NotRunningSaysWhy", testNotRunningSaysWhy},
		{"Files", testFiles},
		{"ListDir", testListDir},
		{"RemoveFile", testRemoveFile},
		{"FilesOnTmpfs", testFilesOnTmpfs},
		{"ReadFileBounds", testReadFileBounds},
		{"FilesystemRefusals", testFilesystemRefusals},
		{"ListDirLarge", testListDirLarge},
		{"HelpersLeaveNothingRunning", testHelpersLeaveNothingRunning},
		{"Logs", testLogs},
		{"Stats", testStats},
		{"Terminal", testTerminal},
		{"Claim", testClaim},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, NewEnv(t, h)) })
	}
}

// Env is one test's view of a harness: a cluster label of its own, whose sandboxes it removes at
// the test's end, and helpers to make them. The suite gives each test one; a driver's own tests
// use it too.
type Env struct {
	t       *testing.T
	h       Harness
	Cluster string // the value of runtimes.LabelCluster on the test's sandboxes
}

// NewEnv gives the test a fresh cluster label and removes, at its end, every sandbox carrying it.
func NewEnv(t *testing.T, h Harness) *Env {
	t.Helper()
	e := &Env{t: t, h: h, Cluster: "test-" + randHex(6)}
	janitor := h.New(t, Options{Cluster: e.Cluster})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		infos, err := janitor.List(ctx, map[string]string{runtimes.LabelCluster: e.Cluster})
		if err != nil {
			t.Errorf("cleanup: list: %v", err)
			return
		}
		for _, in := range infos {
			if err := janitor.Remove(ctx, in.ID); err != nil {
				t.Errorf("cleanup: remove %s: %v", in.ID, err)
			}
		}
	})
	return e
}

// runtime builds a driver of the test's cluster with opts.
func (e *Env) runtime(opts Options) Driver {
	e.t.Helper()
	opts.Cluster = e.Cluster
	return e.h.New(e.t, opts)
}

// Ctx bounds one call of the test (a minute), and ends with the test.
func (e *Env) Ctx() context.Context {
	ctx, cancel := context.WithTimeout(e.t.Context(), 60*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// Spec is a small sandbox (0.5 CPU, 64 MiB, 64 pids) in the test's cluster with a fresh name and
// sandbox id.
func (e *Env) Spec() runtimes.Spec {
	id := randHex(8)
	return runtimes.Spec{
		Name:  "sbx-test-" + id,
		Image: e.h.Image,
		Labels: map[string]string{
			runtimes.LabelCluster:   e.Cluster,
			runtimes.LabelSandboxID: id,
			runtimes.LabelUserID:    "user-1",
		},
		CPU:       0.5,
		MemoryMB:  64,
		PidsLimit: 64,
	}
}

// MustCreate creates spec's sandbox with rt, failing the test otherwise.
func (e *Env) MustCreate(rt runtimes.Runtime, spec runtimes.Spec) string {
	e.t.Helper()
	id, err := rt.Create(e.Ctx(), spec)
	if err != nil {
		e.t.Fatalf("Create %s: %v", spec.Name, err)
	}
	return id
}

// MustStart creates and starts spec's sandbox with rt, failing the test otherwise.
func (e *Env) MustStart(rt runtimes.Runtime, spec runtimes.Spec) string {
	e.t.Helper()
	id := e.MustCreate(rt, spec)
	if err := rt.Start(e.Ctx(), id); err != nil {
		e.t.Fatalf("Start %s: %v", id, err)
	}
	return id
}

// WantState fails the test unless rt says the sandbox is in state want, and returns what it says.
func (e *Env) WantState(rt runtimes.Runtime, id string, want runtimes.State) runtimes.Info {
	e.t.Helper()
	info, err := rt.Inspect(e.Ctx(), id)
	if err != nil {
		e.t.Fatalf("Inspect %s: %v", id, err)
	}
	if info.State != want {
		e.t.Fatalf("state of %s = %q, want %q", id, info.State, want)
	}
	return info
}

// Run runs argv in the sandbox through the harness (not the driver under test). It takes the
// (sub)test's t so that a failure stops the right goroutine.
func (e *Env) Run(t *testing.T, id string, argv ...string) (int, string) {
	t.Helper()
	return e.h.Run(t, id, argv...)
}

// canPause reports whether the driver pauses sandboxes; one that does not must say so.
func (e *Env) canPause(rt Driver) bool {
	e.t.Helper()
	if rt.Capabilities().Pause {
		return true
	}
	for name, op := range map[string]func(context.Context, string) error{"Pause": rt.Pause, "Resume": rt.Resume} {
		if err := op(e.Ctx(), "sbx-test-any"); !errors.Is(err, runtimes.ErrNotSupported) {
			e.t.Errorf("%s of a driver without Capabilities.Pause: %v, want ErrNotSupported", name, err)
		}
	}
	return false
}

// notRunning makes a sandbox in each state where nothing can run in it: stopped, only created,
// and paused when the driver can pause. It maps the state's name to the sandbox's id.
func (e *Env) notRunning(rt Driver) map[string]string {
	e.t.Helper()
	stopped := e.MustStart(rt, e.Spec())
	if err := rt.Stop(e.Ctx(), stopped, time.Second); err != nil {
		e.t.Fatalf("Stop: %v", err)
	}
	sandboxes := map[string]string{"stopped": stopped, "created": e.MustCreate(rt, e.Spec())}
	if e.canPause(rt) {
		paused := e.MustStart(rt, e.Spec())
		if err := rt.Pause(e.Ctx(), paused); err != nil {
			e.t.Fatalf("Pause: %v", err)
		}
		sandboxes["paused"] = paused
	}
	return sandboxes
}

// Script wraps a shell script for exec. $(tool X) is X when the image has it, else the busybox applet, so the
// tests run on the minimal busybox image (few symlinks) as well as on a Debian one.
func Script(script string) []string {
	return []string{"sh", "-c", `tool() { command -v "$1" >/dev/null 2>&1 && echo "$1" || echo "busybox $1"; }; ` + script}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
