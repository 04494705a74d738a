package kubernetes_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"

	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
	"github.com/insien/orchestrator/internal/runtimes/runtimetest"
	"github.com/insien/orchestrator/internal/testenv"
)

// These tests drive the test cluster that `go tool task test` starts (scripts/k8s.sh); the
// kubeconfig comes from ORCH_TEST_KUBECONFIG.

// TestSuite runs the driver-neutral conformance suite, the one the Docker driver passes.
func TestSuite(t *testing.T) {
	runtimetest.Run(t, newCluster(t).harness(t))
}

// cluster is the test cluster seen from a test: a namespace of the test's own, deleted with
// everything in it at the end.
type cluster struct {
	kubeconfig string
	ns         string
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	return &cluster{kubeconfig: testenv.Kubeconfig(t), ns: testenv.KubeNamespace(t)}
}

// driver is a driver with opts for the test's namespace, with imported images (there is no
// registry), reachable. log may be nil.
func (c *cluster) driver(t testing.TB, opts kubernetes.Options, log *zap.Logger) *kubernetes.Runtime {
	t.Helper()
	opts.Kubeconfig, opts.Namespace, opts.ImagePullPolicy = c.kubeconfig, c.ns, corev1.PullNever
	rt, err := kubernetes.New(opts, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	return rt
}

// harness plugs the driver into runtimetest. Its Run execs by plain client-go (testenv.KubeExec),
// never through the driver under test.
func (c *cluster) harness(t testing.TB) runtimetest.Harness {
	return runtimetest.Harness{
		New: func(t *testing.T, o runtimetest.Options) runtimetest.Driver {
			return c.driver(t, kubernetes.Options{
				Cluster:      o.Cluster,
				StopGrace:    o.StopGrace,
				ReadOnlyRoot: o.ReadOnlyRoot,
				TmpfsSizeMB:  o.TmpfsSizeMB,
			}, o.Log)
		},
		Image: testenv.Image(t),
		Run: func(t *testing.T, id string, argv ...string) (int, string) {
			t.Helper()
			return testenv.KubeExec(t, c.ns, id, kubernetes.SandboxContainer, argv...)
		},
	}
}
