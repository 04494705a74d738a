package kubernetes_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
)

// TestUnreachableAPIServerIsUnavailable: with no API server at the kubeconfig's address, or one
// that accepts connections and never answers, Ping and Create answer ErrUnavailable within
// moments (the orchestrator reports `runtime: unavailable` and a create gets 503), and every
// other call does too rather than hanging.
func TestUnreachableAPIServerIsUnavailable(t *testing.T) {
	servers := []struct {
		name, addr string
	}{
		{"nothing listens", closedAddress(t)},
		{"silent server", silentAddress(t)},
	}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			r, err := kubernetes.New(kubernetes.Options{Kubeconfig: kubeconfigFor(t, s.addr), Namespace: "ns", Cluster: "test",
				RequestTimeout: 500 * time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			everyCallUnavailable(t, r)
		})
	}
}

func everyCallUnavailable(t *testing.T, r *kubernetes.Runtime) {
	spec := runtimes.Spec{Name: "sbx-unreachable", Image: "busybox", Labels: map[string]string{runtimes.LabelSandboxID: "1"}}
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"ping", r.Ping},
		{"create", func(ctx context.Context) error { _, err := r.Create(ctx, spec); return err }},
		{"start", func(ctx context.Context) error { return r.Start(ctx, spec.Name) }},
		{"stop", func(ctx context.Context) error { return r.Stop(ctx, spec.Name, time.Second) }},
		{"remove", func(ctx context.Context) error { return r.Remove(ctx, spec.Name) }},
		{"inspect", func(ctx context.Context) error { _, err := r.Inspect(ctx, spec.Name); return err }},
		{"list", func(ctx context.Context) error { _, err := r.List(ctx, nil); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			began := time.Now()
			err := c.call(ctx)
			if !errors.Is(err, runtimes.ErrUnavailable) {
				t.Fatalf("%s: %v, want ErrUnavailable", c.name, err)
			}
			if took := time.Since(began); took > 2*time.Second {
				t.Errorf("%s took %s to fail", c.name, took)
			}
		})
	}
}

// TestWatchOfUnreachableAPIServerWaits: a watch of an unreachable server sends no EventResync
// (nothing was listed) while it retries, and closes its channel when its context ends.
func TestWatchOfUnreachableAPIServerWaits(t *testing.T) {
	r, err := kubernetes.New(kubernetes.Options{Kubeconfig: kubeconfigFor(t, closedAddress(t)), Namespace: "ns", Cluster: "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for ev := range r.Watch(ctx, nil) {
		t.Errorf("event %+v from an unreachable server", ev)
	}
}

// silentAddress is a loopback address that accepts connections and never answers.
func silentAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var held []net.Conn
		for {
			c, err := l.Accept()
			if err != nil { // closed: the test is over
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	return l.Addr().String()
}

// closedAddress is a loopback address where nothing listens.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// kubeconfigFor writes a kubeconfig for an API server at addr (no credentials) and returns its path.
func kubeconfigFor(t *testing.T, addr string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://` + addr + `", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: "t"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
