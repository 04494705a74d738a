package runtimetest

import (
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Claim: a running workload can be claimed at its own size, and at another size where the driver
// resizes in place (the kernel then enforces the new limits) or else is refused with
// ErrNotSupported, leaving it as it was; its sandbox label never changes. A workload that stopped
// or is gone cannot be claimed, and says why.
func testClaim(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	spec := e.Spec()
	id := e.MustStart(rt, spec)
	labels := maps.Clone(spec.Labels)
	labels[runtimes.LabelUserID] = "user-2"

	if err := rt.Claim(e.Ctx(), id, runtimes.Claim{CPU: spec.CPU, MemoryMB: spec.MemoryMB, Labels: labels}); err != nil {
		t.Fatalf("Claim at the workload's own size: %v", err)
	}
	info := e.WantState(rt, id, runtimes.StateRunning)
	if got := info.Labels[runtimes.LabelSandboxID]; got != spec.Labels[runtimes.LabelSandboxID] {
		t.Errorf("sandbox label after a claim = %q, want %q", got, spec.Labels[runtimes.LabelSandboxID])
	}

	limits := func() string {
		_, out := e.Run(t, id, "sh", "-c", CgroupLimitsScript)
		return out
	}
	bigger := runtimes.Claim{CPU: 0.25, MemoryMB: 2 * spec.MemoryMB, Labels: labels}
	err := rt.Claim(e.Ctx(), id, bigger)
	want := fmt.Sprintf("memory=%d\ncpu=25000 100000\n", bigger.MemoryMB<<20)
	if !rt.Capabilities().LiveResize {
		want = fmt.Sprintf("memory=%d\ncpu=50000 100000\n", spec.MemoryMB<<20)
		if !errors.Is(err, runtimes.ErrNotSupported) {
			t.Fatalf("Claim at another size without Capabilities.LiveResize: %v, want ErrNotSupported", err)
		}
	} else if err != nil {
		t.Fatalf("Claim at another size: %v", err)
	}
	if got := limits(); got != want {
		t.Errorf("the cgroup after the claim says\n%s\nwant\n%s", got, want)
	}

	if err := rt.Stop(e.Ctx(), id, 0); err != nil {
		t.Fatal(err)
	}
	if err := rt.Claim(e.Ctx(), id, bigger); !errors.Is(err, runtimes.ErrNotRunning) {
		t.Errorf("Claim of a stopped workload: %v, want ErrNotRunning", err)
	}
	if err := rt.Remove(e.Ctx(), id); err != nil {
		t.Fatal(err)
	}
	// A Pod may still be terminating when Remove returns: not running is as good as gone.
	if err := rt.Claim(e.Ctx(), id, bigger); !errors.Is(err, runtimes.ErrNotFound) && !errors.Is(err, runtimes.ErrNotRunning) {
		t.Errorf("Claim of a removed workload: %v, want ErrNotFound (or ErrNotRunning)", err)
	}
}
