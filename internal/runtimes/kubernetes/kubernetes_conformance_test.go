package kubernetes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/insien/orchestrator/internal/runtimes/runtimetest"
	"github.com/insien/orchestrator/internal/testenv"
)

// These tests drive the test cluster that `go tool task test` starts (scripts/k8s.sh); the
// kubeconfig comes from ORCH_TEST_KUBECONFIG.

// TestSuite runs the driver-neutral conformance suite, the one the Docker driver passes.
func TestSuite(t *testing.T) {
	runtimetest.Run(t, suiteHarness(t))
}

// suiteHarness plugs the driver into runtimetest, in a namespace of the test's own. Its Run
// execs by plain client-go (directExec), never through the driver under test.
func suiteHarness(t *testing.T) runtimetest.Harness {
	t.Helper()
	kubeconfig := testenv.Require(t, "ORCH_TEST_KUBECONFIG")
	ns := testNamespace(t, kubeconfig)
	admin := testDriver(t, kubeconfig, ns, Options{Cluster: "harness"}, nil)
	return runtimetest.Harness{
		New: func(t *testing.T, o runtimetest.Options) runtimetest.Driver {
			return testDriver(t, kubeconfig, ns, Options{
				Cluster:      o.Cluster,
				StopGrace:    o.StopGrace,
				ReadOnlyRoot: o.ReadOnlyRoot,
				TmpfsSizeMB:  o.TmpfsSizeMB,
			}, o.Log)
		},
		Image: testenv.Image(t),
		Run: func(t *testing.T, id string, argv ...string) (int, string) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var out bytes.Buffer
			code, err := directExec(ctx, admin, id, argv, &out)
			if err != nil {
				t.Fatalf("exec %q in %s: %v", argv, id, err)
			}
			return code, out.String()
		},
	}
}

// testDriver is a driver with opts for namespace ns of the test cluster, with imported images
// (there is no registry), reachable. log may be nil.
func testDriver(t testing.TB, kubeconfig, ns string, opts Options, log *zap.Logger) *Runtime {
	t.Helper()
	opts.Kubeconfig, opts.Namespace, opts.ImagePullPolicy = kubeconfig, ns, corev1.PullNever
	rt, err := New(opts, log)
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

// testNamespace creates a namespace for the test, ready for Pods (its default ServiceAccount
// exists), and deletes it with everything in it at the test's end.
func testNamespace(t testing.TB, kubeconfig string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := "ki-test-" + hex.EncodeToString(b)
	rt, err := New(Options{Kubeconfig: kubeconfig, Namespace: ns, Cluster: "harness"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rt.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		zero := int64(0)
		if err := rt.cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace %s: %v", ns, err)
		}
	})
	// Without the controller-manager's ServiceAccount controller no Pod is admitted.
	for {
		if _, err := rt.cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return ns
		}
		select {
		case <-ctx.Done():
			t.Fatalf("namespace %s has no default ServiceAccount", ns)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
