package docker_test

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/docker"
	"github.com/insien/orchestrator/internal/runtimes/runtimetest"
)

// TestWatchReconnects: when the event stream breaks, the driver reconnects by itself, announces
// it with a resync (events may have been lost) and goes on reporting.
func TestWatchReconnects(t *testing.T) {
	h := newHarness(t)
	e := h.env(t)
	proxy := newCutter(t, h.host)
	watched, err := docker.New(docker.Options{Host: proxy.host}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watched.Close() })
	events := watched.Watch(e.Ctx(), map[string]string{runtimes.LabelCluster: e.Cluster})
	if ev := runtimetest.NextEvent(t, events, 10*time.Second); ev.Kind != runtimes.EventResync {
		t.Fatalf("first event = %+v, want a resync", ev)
	}
	proxy.cut()
	if ev := runtimetest.NextEvent(t, events, 10*time.Second); ev.Kind != runtimes.EventResync {
		t.Fatalf("after the stream broke: %+v, want a resync", ev)
	}
	rt := h.runtime(t, docker.Options{}, nil)
	spec := e.Spec()
	spec.Command = runtimetest.Script("sleep 0.3; exit 5")
	e.MustStart(rt, spec)
	if ev := runtimetest.WaitExits(t, events, spec.Name)[spec.Name]; ev.ExitCode != 5 {
		t.Errorf("after reconnecting: %+v, want exit 5", ev)
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
