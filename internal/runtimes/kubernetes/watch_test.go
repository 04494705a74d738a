package kubernetes_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
	"github.com/insien/orchestrator/internal/runtimes/runtimetest"
)

// TestWatchReportsEndsFromOutside: a Pod ended by anything but its own main process is reported
// as such, so that a sandbox never stays running for ever: deleted behind the driver's back
// (EventGone), evicted by the kubelet for exceeding its ephemeral storage (Evicted), past its
// MaxLifetime deadline (exit code -1); and a Pod the driver removes is an ordinary exit.
func TestWatchReportsEndsFromOutside(t *testing.T) {
	c := newClusterTest(t)
	r := c.runtime(kubernetes.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	events := r.Watch(ctx, map[string]string{runtimes.LabelCluster: "test"})
	if ev := runtimetest.NextEvent(t, events, 30*time.Second); ev.Kind != runtimes.EventResync {
		t.Fatalf("first event %+v, want a resync", ev)
	}

	deleted, removed, evicted, expired := c.spec(), c.spec(), c.spec(), c.spec()
	evicted.Command = []string{"sh", "-c", "head -c 40000000 /dev/zero > /tmp/fill; exec sleep 3600"}
	c.start(r, deleted)
	c.start(r, removed)
	evicted.DiskMB = runtimes.MinDiskMB // 16 MiB: the 40 MB written pass it
	c.start(r, evicted)
	c.start(c.runtime(kubernetes.Options{MaxLifetime: 2 * time.Second}), expired)
	if err := c.pods().Delete(c.ctx(), deleted.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(c.ctx(), removed.Name); err != nil {
		t.Fatal(err)
	}

	const anyCode = 1000 // an eviction's exit status is whatever the kill left
	want := map[string]runtimes.Event{
		deleted.Name: {Kind: runtimes.EventGone, ExitCode: -1},
		removed.Name: {Kind: runtimes.EventExited, ExitCode: -1},
		evicted.Name: {Kind: runtimes.EventExited, ExitCode: anyCode, Evicted: true},
		expired.Name: {Kind: runtimes.EventExited, ExitCode: -1},
	}
	got := map[string]runtimes.Event{}
	began := time.Now()
	deadline := time.After(90 * time.Second) // the kubelet checks ephemeral storage every 10 s
	for len(got) < len(want) {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the event channel closed")
			}
			if ev.Kind == runtimes.EventResync {
				continue
			}
			t.Logf("%s after %s: %+v", ev.Name, time.Since(began).Round(time.Second), ev)
			if _, dup := got[ev.Name]; dup {
				t.Errorf("%s reported twice: %+v", ev.Name, ev)
			}
			got[ev.Name] = ev
		case <-deadline:
			p := c.get(evicted.Name)
			t.Fatalf("events after 90 s: %+v; want one for each of %v (the evicted pod: %+v)", got, want, p.Status)
		}
	}
	for name, w := range want {
		ev := got[name]
		if ev.Kind != w.Kind || ev.Evicted != w.Evicted || ev.OOMKilled || (w.ExitCode != anyCode && ev.ExitCode != w.ExitCode) ||
			ev.Labels[runtimes.LabelSandboxID] == "" || ev.ID != name {
			t.Errorf("event of %s = %+v, want %+v", name, ev, w)
		}
	}
	// Inspect, which the reconciler uses, says the same of the Pods that are still there.
	for _, s := range []struct {
		name    string
		evicted bool
		why     string
	}{{evicted.Name, true, "Evicted"}, {expired.Name, false, "DeadlineExceeded"}} {
		info, err := r.Inspect(c.ctx(), s.name)
		if err != nil || info.State != runtimes.StateExited || info.Evicted != s.evicted || !strings.Contains(info.Error, s.why) {
			t.Errorf("Inspect %s = %+v, %v; want exited, evicted %v, saying %s", s.name, info, err, s.evicted, s.why)
		}
	}
	cancel()
	for range events {
	}
}

// TestWatchResyncsAfterOutage: when the API server goes away and comes back, the watch connects
// again by itself and sends EventResync (events of the outage may be lost: the receiver
// reconciles), then reports exits again.
func TestWatchResyncsAfterOutage(t *testing.T) {
	c := newClusterTest(t)
	p := newProxy(t, c.kubeconfig)
	r := c.runtime(kubernetes.Options{})
	viaProxy, err := kubernetes.New(kubernetes.Options{Kubeconfig: p.kubeconfig, Namespace: c.ns}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(c.ctx())
	defer cancel()
	events := viaProxy.Watch(ctx, map[string]string{runtimes.LabelCluster: "test"})
	if ev := runtimetest.NextEvent(t, events, 30*time.Second); ev.Kind != runtimes.EventResync {
		t.Fatalf("first event %+v, want a resync", ev)
	}
	// The watch streams once a Pod's end comes through it. Taken down before, the outage could
	// meet the watch request itself, which client-go retries in place (from the same
	// resourceVersion, so rightly without a resync): not the outage this test is about.
	first := c.spec()
	first.Command = []string{"sh", "-c", "exit 3"}
	c.start(r, first)
	for ev := runtimetest.NextEvent(t, events, 30*time.Second); ev.Name != first.Name; ev = runtimetest.NextEvent(t, events, 30*time.Second) {
	}

	p.down()
	if err := viaProxy.Ping(c.ctx()); !errors.Is(err, runtimes.ErrUnavailable) {
		t.Fatalf("Ping during the outage: %v, want ErrUnavailable", err)
	}
	spec := c.spec()
	spec.Command = []string{"sh", "-c", "sleep 1; exit 4"}
	c.start(r, spec) // through the API server itself: it ends during the outage
	p.up()

	if ev := runtimetest.NextEvent(t, events, 30*time.Second); ev.Kind != runtimes.EventResync {
		t.Fatalf("first event after the outage %+v, want a resync", ev)
	}
	if err := viaProxy.Ping(c.ctx()); err != nil {
		t.Fatalf("Ping after the outage: %v", err)
	}
	again := c.spec()
	again.Command = []string{"sh", "-c", "exit 5"}
	c.start(r, again)
	for {
		ev := runtimetest.NextEvent(t, events, 30*time.Second)
		if ev.Name == again.Name {
			if ev.Kind != runtimes.EventExited || ev.ExitCode != 5 {
				t.Errorf("event %+v, want an exit with 5", ev)
			}
			return
		}
	}
}

// proxy forwards TCP connections to the test cluster's API server, and can cut them all and
// refuse new ones (an outage) until it is up again, on the same address.
type proxy struct {
	t          *testing.T
	addr, to   string
	kubeconfig string // the test kubeconfig, pointed at the proxy

	mu    sync.Mutex
	l     net.Listener
	conns []net.Conn
}

func newProxy(t *testing.T, kubeconfig string) *proxy {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cluster := cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster]
	p := &proxy{t: t, to: strings.TrimPrefix(cluster.Server, "https://"), addr: closedAddress(t)}
	cluster.Server = "https://" + p.addr
	p.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p.kubeconfig); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p.kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	p.up()
	t.Cleanup(p.down)
	return p
}

func (p *proxy) up() {
	p.t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", p.to)
			if err != nil {
				in.Close()
				continue
			}
			// A connection accepted just before down() must not outlive it: down() closed the
			// listener (p.l is no longer l) and only knows the connections recorded before.
			p.mu.Lock()
			if p.l != l {
				p.mu.Unlock()
				in.Close()
				out.Close()
				return
			}
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
}

// down closes the listener and every connection made through it.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
