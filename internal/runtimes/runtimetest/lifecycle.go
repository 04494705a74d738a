package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Lifecycle: create, start, stop (SIGTERM reaches the main process) and remove, each repeatable, with
// what Inspect reports at each step.
func testLifecycle(t *testing.T, e *Env) {
	rt := e.runtime(Options{StopGrace: 20 * time.Second})
	spec := e.Spec()

	id := e.MustCreate(rt, spec)
	info := e.WantState(rt, id, runtimes.StateCreated)
	if info.ID != id || info.Name != spec.Name {
		t.Errorf("Inspect = {ID:%q Name:%q}, want {%q %q}", info.ID, info.Name, id, spec.Name)
	}
	if !info.StartedAt.IsZero() {
		t.Errorf("created sandbox has StartedAt %v, want zero", info.StartedAt)
	}

	if err := rt.Start(e.Ctx(), id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := rt.Start(e.Ctx(), id); err != nil {
		t.Errorf("Start of a running sandbox: %v, want nil", err)
	}
	info = e.WantState(rt, id, runtimes.StateRunning)
	if info.StartedAt.IsZero() || time.Since(info.StartedAt) > time.Minute {
		t.Errorf("StartedAt = %v, want about now", info.StartedAt)
	}
	for k, v := range spec.Labels {
		if info.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, info.Labels[k], v)
		}
	}
	if info.Labels[runtimes.LabelManagedBy] != "true" {
		t.Errorf("label %s = %q, want \"true\"", runtimes.LabelManagedBy, info.Labels[runtimes.LabelManagedBy])
	}

	// The image's command traps SIGTERM and exits 0: a clean exit proves the signal reached it
	// through the init process, well before the grace period (20 s) ran out.
	start := time.Now()
	if err := rt.Stop(e.Ctx(), id, 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Stop took %v: SIGTERM was not handled, the engine had to SIGKILL", took)
	}
	info = e.WantState(rt, id, runtimes.StateExited)
	if info.ExitCode != 0 || info.Error != "" {
		t.Errorf("after Stop: ExitCode=%d Error=%q, want 0 and empty", info.ExitCode, info.Error)
	}
	if info.FinishedAt.Before(info.StartedAt) {
		t.Errorf("FinishedAt %v before StartedAt %v", info.FinishedAt, info.StartedAt)
	}
	if err := rt.Stop(e.Ctx(), id, time.Second); err != nil {
		t.Errorf("Stop of a stopped sandbox: %v, want nil", err)
	}

	for i := range 2 {
		if err := rt.Remove(e.Ctx(), id); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if _, err := rt.Inspect(e.Ctx(), id); !errors.Is(err, runtimes.ErrNotFound) {
		t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
	}
}

// ExitCodeAndCommand: Spec.Command replaces the image's command, and its exit status is reported.
func testExitCodeAndCommand(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	spec := e.Spec()
	spec.Command = []string{"/bin/sh", "-c", "exit 7"}
	id := e.MustStart(rt, spec)

	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := rt.Inspect(e.Ctx(), id)
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if info.State == runtimes.StateExited {
			if info.ExitCode != 7 {
				t.Errorf("ExitCode = %d, want 7", info.ExitCode)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox still %s after 20s", info.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PauseResume: pausing and resuming are idempotent, a paused sandbox stops, and a stopped one
// can be neither paused nor resumed. A driver that cannot pause says so (see canPause).
func testPauseResume(t *testing.T, e *Env) {
	rt := e.runtime(Options{StopGrace: 5 * time.Second})
	if !e.canPause(rt) {
		return
	}
	id := e.MustStart(rt, e.Spec())

	steps := []struct {
		name string
		op   func(context.Context, string) error
		want runtimes.State
	}{
		{"pause", rt.Pause, runtimes.StatePaused},
		{"pause again", rt.Pause, runtimes.StatePaused},
		{"resume", rt.Resume, runtimes.StateRunning},
		{"resume again", rt.Resume, runtimes.StateRunning},
		{"pause before stop", rt.Pause, runtimes.StatePaused},
	}
	for _, s := range steps {
		if err := s.op(e.Ctx(), id); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		e.WantState(rt, id, s.want)
	}

	if err := rt.Stop(e.Ctx(), id, 2*time.Second); err != nil {
		t.Fatalf("Stop of a paused sandbox: %v", err)
	}
	e.WantState(rt, id, runtimes.StateExited)
	if err := rt.Pause(e.Ctx(), id); !errors.Is(err, runtimes.ErrNotRunning) {
		t.Errorf("Pause of an exited sandbox: %v, want ErrNotRunning", err)
	}
	if err := rt.Resume(e.Ctx(), id); !errors.Is(err, runtimes.ErrNotRunning) {
		t.Errorf("Resume of an exited sandbox: %v, want ErrNotRunning", err)
	}
}

// UnenforceableLimits: limits the engine would not enforce are refused before the engine sees
// them. A CPU under runtimes.MinCPU maps to a CFS quota of 0 (no limit: 1e-9 core burned whole
// cores) or under the kernel's 1 ms minimum (the start fails with runc's text).
func testUnenforceableLimits(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	for _, c := range []struct {
		name string
		edit func(*runtimes.Spec)
	}{
		{"cpu 1e-9", func(s *runtimes.Spec) { s.CPU = 1e-9 }},
		{"cpu 1e-5", func(s *runtimes.Spec) { s.CPU = 1e-5 }},
		{"cpu 0.0099", func(s *runtimes.Spec) { s.CPU = 0.0099 }},
		{"memory 5 MiB", func(s *runtimes.Spec) { s.MemoryMB = 5 }},
		{"memory that overflows bytes", func(s *runtimes.Spec) { s.MemoryMB = 1 << 60 }},
		{"disk under the minimum", func(s *runtimes.Spec) { s.DiskMB = runtimes.MinDiskMB - 1 }},
		{"negative disk", func(s *runtimes.Spec) { s.DiskMB = -1 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := e.Spec()
			c.edit(&spec)
			if id, err := rt.Create(e.Ctx(), spec); err == nil || errors.Is(err, runtimes.ErrUnavailable) {
				t.Fatalf("Create = (%q, %v), want a refusal", id, err)
			}
			if got, err := rt.List(e.Ctx(), map[string]string{runtimes.LabelSandboxID: spec.Labels[runtimes.LabelSandboxID]}); err != nil || len(got) != 0 {
				t.Errorf("List after a refused create = %v, %v; want nothing", got, err)
			}
		})
	}

	t.Run("the minimum is accepted", func(t *testing.T) {
		spec := e.Spec()
		spec.CPU = runtimes.MinCPU
		id := e.MustStart(rt, spec)
		e.WantState(rt, id, runtimes.StateRunning)
	})
}

// MissingSandbox: every call about a sandbox that does not exist says ErrNotFound, but Remove,
// whose outcome is the one asked for.
func testMissingSandbox(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	const missing = "sbx-test-does-not-exist"

	cases := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"Inspect", func(ctx context.Context) error { _, err := rt.Inspect(ctx, missing); return err }},
		{"Start", func(ctx context.Context) error { return rt.Start(ctx, missing) }},
		{"Stop", func(ctx context.Context) error { return rt.Stop(ctx, missing, time.Second) }},
		{"Inspect empty id", func(ctx context.Context) error { _, err := rt.Inspect(ctx, ""); return err }},
	}
	if e.canPause(rt) {
		cases = append(cases, []struct {
			name string
			op   func(ctx context.Context) error
		}{
			{"Pause", func(ctx context.Context) error { return rt.Pause(ctx, missing) }},
			{"Resume", func(ctx context.Context) error { return rt.Resume(ctx, missing) }},
		}...)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.op(e.Ctx()); !errors.Is(err, runtimes.ErrNotFound) {
				t.Errorf("%s of a missing sandbox: %v, want ErrNotFound", c.name, err)
			}
		})
	}
	if err := rt.Remove(e.Ctx(), missing); err != nil {
		t.Errorf("Remove of a missing sandbox: %v, want nil", err)
	}
}

// List: only the sandboxes that carry every label asked for, in their states, never another cluster's.
func testList(t *testing.T, e *Env) {
	rt := e.runtime(Options{})

	running := e.Spec()
	created := e.Spec()
	runningID := e.MustStart(rt, running)
	createdID := e.MustCreate(rt, created)

	// Another cluster on the same engine must stay invisible.
	other := NewEnv(t, e.h)
	other.MustCreate(other.runtime(Options{}), other.Spec())

	cases := []struct {
		name   string
		labels map[string]string
		want   map[string]runtimes.State
	}{
		{"cluster", map[string]string{runtimes.LabelCluster: e.Cluster},
			map[string]runtimes.State{runningID: runtimes.StateRunning, createdID: runtimes.StateCreated}},
		{"cluster and sandbox", map[string]string{runtimes.LabelCluster: e.Cluster, runtimes.LabelSandboxID: created.Labels[runtimes.LabelSandboxID]},
			map[string]runtimes.State{createdID: runtimes.StateCreated}},
		{"all labels must match", map[string]string{runtimes.LabelCluster: other.Cluster, runtimes.LabelSandboxID: created.Labels[runtimes.LabelSandboxID]},
			map[string]runtimes.State{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			infos, err := rt.List(e.Ctx(), c.labels)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			got := map[string]runtimes.State{}
			for _, in := range infos {
				got[in.ID] = in.State
				if in.Name == "" || in.Labels[runtimes.LabelManagedBy] != "true" {
					t.Errorf("List item %+v lacks a name or the managed-by label", in)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("List(%v) = %v, want %v", c.labels, got, c.want)
			}
		})
	}
}

// CreateSameName: a retried create finds its own sandbox; another sandbox's name is refused.
func testCreateSameName(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	spec := e.Spec()
	id := e.MustCreate(rt, spec)

	again, err := rt.Create(e.Ctx(), spec)
	if err != nil || again != id {
		t.Fatalf("retried Create = (%q, %v), want (%q, nil)", again, err, id)
	}

	intruder := e.Spec()
	intruder.Name = spec.Name
	if got, err := rt.Create(e.Ctx(), intruder); err == nil {
		t.Fatalf("Create of another sandbox under a taken name = %q, want an error", got)
	}
}

// EnvValuesAreNotLogged: environment values (secrets) never reach the driver's log.
func testEnvValuesAreNotLogged(t *testing.T, e *Env) {
	core, logs := observer.New(zapcore.DebugLevel)
	rt := e.runtime(Options{Log: zap.New(core)})
	const secret = "s3cr3t-value-that-must-not-leak"
	spec := e.Spec()
	spec.Env = map[string]string{"API_TOKEN": secret}
	e.MustStart(rt, spec)
	e.MustCreate(rt, spec) // the retried-create path logs too

	if logs.Len() == 0 {
		t.Fatal("no log entries captured: the test would not see a leak")
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), secret) {
			t.Errorf("log entry leaks an env value: %s %v", e.Message, e.ContextMap())
		}
	}
}

// NextEvent returns the next event within d, failing the test otherwise.
func NextEvent(t *testing.T, events <-chan runtimes.Event, d time.Duration) runtimes.Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the event channel closed")
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
	}
	panic("unreachable")
}

// WaitExits collects the EventExited of the named sandboxes, failing on any event of another one.
func WaitExits(t *testing.T, events <-chan runtimes.Event, names ...string) map[string]runtimes.Event {
	t.Helper()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	got := map[string]runtimes.Event{}
	for len(got) < len(names) {
		ev := NextEvent(t, events, 20*time.Second)
		if ev.Kind != runtimes.EventExited {
			continue // a resync of a slow engine; nothing to check
		}
		if !want[ev.Name] {
			t.Fatalf("event of a sandbox outside the watched labels: %+v", ev)
		}
		got[ev.Name] = ev
	}
	return got
}

// Watch: the end of a main process arrives as one event with its exit code; an OOM kill of
// the main process is told apart from one of a child that the main process survives.
func testWatch(t *testing.T, e *Env) {
	rt := e.runtime(Options{StopGrace: time.Second})
	ctx, cancel := context.WithCancel(e.Ctx())
	events := rt.Watch(ctx, map[string]string{runtimes.LabelCluster: e.Cluster})
	if ev := NextEvent(t, events, 10*time.Second); ev.Kind != runtimes.EventResync {
		t.Fatalf("first event = %+v, want a resync", ev)
	}

	other := NewEnv(t, e.h) // another cluster: its sandboxes must not be reported
	otherSpec := other.Spec()
	otherSpec.Command = Script("exit 9")
	other.MustStart(other.runtime(Options{}), otherSpec)

	// Each waits a moment, as a sandbox's command would: the engine arms its OOM notification
	// only after the start, late on a loaded machine, and misses a kill before that.
	const hog = `x=$(head -c 100000000 /dev/zero | tr "\0" a)`
	cases := []struct {
		name     string
		script   string
		wantCode int
		wantOOM  bool
	}{
		{"exit 3", "sleep 1; exit 3", 3, false},
		{"main process OOM-killed", "sleep 1; " + hog, 137, true},
		// The child makes itself the OOM killer's first choice, as every exec does: else, when the
		// limit is hit while the child's memory is still in a pipe's buffers, the kernel may pick
		// the main process (seen under load).
		{"a child OOM-killed, the main process exits 0", "sleep 1; (echo 1000 >/proc/self/oom_score_adj; " + hog + "); exit 0", 0, false},
	}
	var specs []runtimes.Spec
	names := make([]string, len(cases))
	for i, c := range cases {
		spec := e.Spec()
		spec.MemoryMB = 16
		spec.Command = Script(c.script)
		specs = append(specs, spec)
		names[i] = spec.Name
	}
	startAll(t, rt, specs) // in parallel: a start takes seconds on a loaded engine
	got := WaitExits(t, events, names...)
	for i, c := range cases {
		ev := got[names[i]]
		if ev.ExitCode != c.wantCode || ev.OOMKilled != c.wantOOM || ev.ID == "" || ev.Labels[runtimes.LabelCluster] != e.Cluster ||
			ev.Labels[runtimes.LabelSandboxID] == "" || ev.Labels["image"] != "" {
			t.Errorf("%s: event %+v, want exit %d, oom %v and the orchestrator's labels only", c.name, ev, c.wantCode, c.wantOOM)
		}
		// Inspect, which the reconciler uses when events were missed, says the same.
		info := e.WantState(rt, names[i], runtimes.StateExited)
		if info.ExitCode != c.wantCode || info.OOMKilled != c.wantOOM {
			t.Errorf("%s: Inspect = exit %d, oom %v; want %d, %v", c.name, info.ExitCode, info.OOMKilled, c.wantCode, c.wantOOM)
		}
	}

	cancel()
	for range events {
		// drain until the driver closes the channel
	}
}

// startAll creates and starts every spec at once.
func startAll(t *testing.T, rt Driver, specs []runtimes.Spec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Go(func() {
			id, err := rt.Create(ctx, spec)
			if err == nil {
				err = rt.Start(ctx, id)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("starting %s: %v", specs[i].Name, err)
		}
	}
}
