package testenv

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Env names exported by `scripts/k8s.sh env test`.
const (
	EnvKubeconfig    = "ORCH_TEST_KUBECONFIG"     // admin kubeconfig of the test cluster
	EnvK8sContainerd = "ORCH_TEST_K8S_CONTAINERD" // its containerd socket, for `ctr -n k8s.io images import`
)

// LabelTestNamespace marks the namespaces KubeNamespace creates, so that leftovers of a killed
// run can be found (kubectl get ns -l insien.dev/test-namespace).
const LabelTestNamespace = "insien.dev/test-namespace"

// Kubeconfig is the admin kubeconfig of the test cluster that `go tool task test` starts.
func Kubeconfig(t testing.TB) string {
	t.Helper()
	return Require(t, EnvKubeconfig)
}

// KubeClient is an admin client of the test cluster, with the rest config that exec and
// port-forward need.
func KubeClient(t testing.TB) (*kubernetes.Clientset, *rest.Config) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", Kubeconfig(t))
	if err != nil {
		t.Fatalf("%s: %v", EnvKubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kubernetes client: %v", err)
	}
	return cs, cfg
}

// KubeNamespace creates a namespace of this test's own, ready for Pods (its default
// ServiceAccount exists), and deletes it, with everything in it, when the test ends.
func KubeNamespace(t testing.TB) string {
	t.Helper()
	cs, _ := KubeClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "orch-test-",
		Labels:       map[string]string{LabelTestNamespace: "true"},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a test namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		zero := int64(0)
		err := cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace %s: %v", ns.Name, err)
		}
	})
	// The controller-manager creates the ServiceAccount a moment later; until then the API server
	// refuses Pods in the namespace.
	Eventually(t, "the default ServiceAccount of "+ns.Name, 30*time.Second, func() bool {
		_, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	return ns.Name
}
