package docker_test

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/docker"
)

// next returns the next event within d, failing the test otherwise.
func next(t *testing.T, events <-chan runtimes.Event, d time.Duration) runtimes.Event {
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

// exits collects the EventExited of the named containers, failing on any event of another one.
func exits(t *testing.T, events <-chan runtimes.Event, names ...string) map[string]runtimes.Event {
	t.Helper()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	got := map[string]runtimes.Event{}
	for len(got) < len(names) {
		ev := next(t, events, 20*time.Second)
		if ev.Kind != runtimes.EventExited {
			continue // a resync of a slow engine; nothing to check
		}
		if !want[ev.Name] {
			t.Fatalf("event of a container outside the watched labels: %+v", ev)
		}
		got[ev.Name] = ev
	}
	return got
}

// TestWatch: the end of a main process arrives as one event with its exit code; an OOM kill of
// the main process is told apart from one of a child that the main process survives.
func TestWatch(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{StopGrace: time.Second})
	ctx, cancel := context.WithCancel(h.ctx())
	events := rt.Watch(ctx, map[string]string{runtimes.LabelCluster: h.cluster})
	if ev := next(t, events, 10*time.Second); ev.Kind != runtimes.EventResync {
		t.Fatalf("first event = %+v, want a resync", ev)
	}

	other := newHarness(t) // another cluster: its containers must not be reported
	otherSpec := other.spec()
	otherSpec.Command = sh("exit 9")

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
		{"a child OOM-killed, the main process exits 0", "sleep 1; (" + hog + "); exit 0", 0, false},
	}
	specs := []runtimes.Spec{otherSpec}
	names := make([]string, len(cases))
	for i, c := range cases {
		spec := h.spec()
		spec.MemoryMB = 16
		spec.Command = sh(c.script)
		specs = append(specs, spec)
		names[i] = spec.Name
	}
	startAll(t, rt, specs) // in parallel: a start takes seconds on a loaded engine
	got := exits(t, events, names...)
	for i, c := range cases {
		ev := got[names[i]]
		if ev.ExitCode != c.wantCode || ev.OOMKilled != c.wantOOM || ev.ID == "" || ev.Labels[runtimes.LabelCluster] != h.cluster ||
			ev.Labels[runtimes.LabelSandboxID] == "" || ev.Labels["image"] != "" {
			t.Errorf("%s: event %+v, want exit %d, oom %v and the orchestrator's labels only", c.name, ev, c.wantCode, c.wantOOM)
		}
		// Inspect, which the reconciler uses when events were missed, says the same.
		info := h.wantState(rt, names[i], runtimes.StateExited)
		if info.ExitCode != c.wantCode || info.OOMKilled != c.wantOOM {
			t.Errorf("%s: Inspect = exit %d, oom %v; want %d, %v", c.name, info.ExitCode, info.OOMKilled, c.wantCode, c.wantOOM)
		}
	}

	cancel()
	for range events {
		// drain until the driver closes the channel
	}
}

// TestWatchReconnects: when the event stream breaks, the driver reconnects by itself, announces
// it with a resync (events may have been lost) and goes on reporting.
func TestWatchReconnects(t *testing.T) {
	h := newHarness(t)
	proxy := newCutter(t, h.host)
	watched, err := docker.New(docker.Options{Host: proxy.host}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watched.Close() })
	events := watched.Watch(h.ctx(), map[string]string{runtimes.LabelCluster: h.cluster})
	if ev := next(t, events, 10*time.Second); ev.Kind != runtimes.EventResync {
		t.Fatalf("first event = %+v, want a resync", ev)
	}
	proxy.cut()
	if ev := next(t, events, 10*time.Second); ev.Kind != runtimes.EventResync {
		t.Fatalf("after the stream broke: %+v, want a resync", ev)
	}
	rt := h.runtime(docker.Options{})
	spec := h.spec()
	spec.Command = sh("sleep 0.3; exit 5")
	h.mustStart(rt, spec)
	if ev := exits(t, events, spec.Name)[spec.Name]; ev.ExitCode != 5 {
		t.Errorf("after reconnecting: %+v, want exit 5", ev)
	}
}

// startAll creates and starts every spec at once.
func startAll(t *testing.T, rt *docker.Runtime, specs []runtimes.Spec) {
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

// cutter is a proxy to the engine's unix socket whose connections the test can cut.
type cutter struct {
	host  string
	mu    sync.Mutex
	conns []net.Conn
}

func newCutter(t *testing.T, engine string) *cutter {
	t.Helper()
	target, ok := strings.CutPrefix(engine, "unix://")
	if !ok {
		t.Fatalf("the proxy needs the engine on a unix socket, not %q", engine)
	}
	path := filepath.Join(t.TempDir(), "engine.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{host: "unix://" + path}
	t.Cleanup(func() { ln.Close(); c.cut() })
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", target)
			if err != nil {
				down.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, down, up)
			c.mu.Unlock()
			go func() { _, _ = io.Copy(up, down); up.Close() }()
			go func() { _, _ = io.Copy(down, up); down.Close() }()
		}
	}()
	return c
}

// cut closes every connection made so far, as an engine restart would.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}
