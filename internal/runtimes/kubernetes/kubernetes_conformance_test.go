package kubernetes_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"

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

// cluster is the test cluster seen from a test: a namespace of the test's own (deleted with
// everything in it at the end) and an admin client for checks that must not trust the driver.
type cluster struct {
	kubeconfig string
	ns         string
	cs         *k8s.Clientset
	rest       *rest.Config
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	c := &cluster{kubeconfig: testenv.Require(t, "ORCH_TEST_KUBECONFIG")}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c.rest = cfg
	if c.cs, err = k8s.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	c.ns = "ki-test-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		zero := int64(0)
		if err := c.cs.CoreV1().Namespaces().Delete(ctx, c.ns, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace %s: %v", c.ns, err)
		}
	})
	// The ServiceAccount admission refuses Pods until the namespace's default ServiceAccount
	// exists; the controller-manager makes it a moment later, if it runs at all.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := c.cs.CoreV1().ServiceAccounts(c.ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return c
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

// harness plugs the driver into runtimetest. Its Run execs by plain client-go, never through the
// driver under test.
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
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var out strings.Builder
			code, err := c.exec(ctx, id, argv, &out)
			if err != nil {
				t.Fatalf("exec %q in %s: %v", argv, id, err)
			}
			return code, out.String()
		},
	}
}

// exec runs argv in the Pod's sandbox container the way kubectl exec does, with nothing of the
// driver: the harness's independent way in and the benchmark's baseline. Its stdout and stderr
// both go to out; a non-zero exit status is returned, not an error.
func (c *cluster) exec(ctx context.Context, pod string, argv []string, out io.Writer) (int, error) {
	req := c.cs.CoreV1().RESTClient().Post().Namespace(c.ns).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "sandbox", Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(c.rest, "POST", req.URL())
	if err != nil {
		return -1, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(c.rest, "GET", req.URL().String())
	if err != nil {
		return -1, err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return -1, err
	}
	w := &lockedWriter{w: out} // remotecommand copies stdout and stderr from two goroutines
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: w, Stderr: w})
	var exit utilexec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit):
		return exit.ExitStatus(), nil
	}
	return -1, err
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
