package kubernetes_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
	"github.com/insien/orchestrator/internal/testenv"
)

// clusterTest is a namespace of the test's own on the test cluster (testenv.KubeNamespace), in
// which a test makes drivers with the Options it needs.
type clusterTest struct {
	t          testing.TB
	cs         k8s.Interface // straight to the API server, not through the driver
	kubeconfig string
	ns         string
}

func newClusterTest(t testing.TB) *clusterTest {
	t.Helper()
	cs, _ := testenv.KubeClient(t)
	return &clusterTest{t: t, cs: cs, kubeconfig: testenv.Kubeconfig(t), ns: testenv.KubeNamespace(t)}
}

// ctx bounds one step of the test (a minute).
func (c *clusterTest) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	c.t.Cleanup(cancel)
	return ctx
}

func (c *clusterTest) pods() typedcorev1.PodInterface { return c.cs.CoreV1().Pods(c.ns) }

// runtime is a driver for the test's namespace, as the cluster's admin: images are never pulled
// (the cluster has no registry) and a stopped sandbox gets a second before SIGKILL, unless opts
// say otherwise.
func (c *clusterTest) runtime(opts kubernetes.Options) *kubernetes.Runtime {
	c.t.Helper()
	if opts.Kubeconfig == "" { // else another user's credentials (see roleKubeconfig)
		opts.Kubeconfig = c.kubeconfig
	}
	opts.Namespace = c.ns
	if opts.ImagePullPolicy == "" {
		opts.ImagePullPolicy = corev1.PullNever
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = time.Second
	}
	r, err := kubernetes.New(opts, zaptest.NewLogger(c.t))
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// spec is a small sandbox (0.25 CPU, 64 MiB) of the test image with a fresh name and sandbox id.
func (c *clusterTest) spec() runtimes.Spec {
	id := randomHex(6)
	return runtimes.Spec{
		Name: "sbx-" + id, Image: testenv.Image(c.t), CPU: 0.25, MemoryMB: 64,
		Labels: map[string]string{runtimes.LabelCluster: "test", runtimes.LabelSandboxID: id, runtimes.LabelUserID: "user-1"},
	}
}

// start creates and starts spec's sandbox with r, failing the test otherwise.
func (c *clusterTest) start(r *kubernetes.Runtime, spec runtimes.Spec) string {
	c.t.Helper()
	id, err := r.Create(c.ctx(), spec)
	if err == nil {
		err = r.Start(c.ctx(), id)
	}
	if err != nil {
		c.t.Fatalf("starting %s: %v", spec.Name, err)
	}
	return id
}

// get reads a Pod straight from the API server; nil when there is none.
func (c *clusterTest) get(name string) *corev1.Pod {
	c.t.Helper()
	p, err := c.pods().Get(c.ctx(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// logs waits until the Pod's output contains until and returns it (read with client-go, not the
// driver).
func (c *clusterTest) logs(name, until string) string {
	c.t.Helper()
	ctx := c.ctx()
	for {
		out, err := c.pods().GetLogs(name, &corev1.PodLogOptions{Container: "sandbox"}).DoRaw(ctx)
		if err == nil && strings.Contains(string(out), until) {
			return string(out)
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("the output of %s never said %q: %q, %v", name, until, out, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
