package testenv

import (
	"context"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/client"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
)

// EnvDriver selects the runtime driver that Config points the service at: "docker" (default) or
// "kubernetes". scripts/test.sh runs the driver-neutral API tests once per driver with it, so that
// one table of tests holds both drivers to the same behaviour.
const EnvDriver = "ORCH_TEST_DRIVER"

// Driver is the runtime driver under test.
func Driver() string {
	if d := os.Getenv(EnvDriver); d != "" {
		return d
	}
	return "docker"
}

// DockerOnly skips a test whose assertions read Docker itself (a container's inspect), when the
// suite runs against another driver; that driver's own tests check the same promises its way.
func DockerOnly(t testing.TB) {
	t.Helper()
	if Driver() != "docker" {
		t.Skipf("reads the Docker engine directly; %s=%s has its own test of this", EnvDriver, Driver())
	}
}

// useDriver points cfg at the driver under test; for Kubernetes, at a namespace of the test's own.
func useDriver(t testing.TB, cfg *config.Config) {
	t.Helper()
	switch d := Driver(); d {
	case "docker":
		if host := os.Getenv(EnvDockerHost); host != "" {
			cfg.Runtime.DockerHost = host
			RemoveCluster(t, cfg.Runtime.Cluster)
		}
	case "kubernetes":
		UseKubernetes(t, cfg)
	default:
		t.Fatalf("%s=%q: want docker or kubernetes", EnvDriver, d)
	}
}

// UseKubernetes points cfg at the test cluster, in a namespace of the test's own (deleted with
// everything in it when the test ends), with images from the cluster's own store only.
func UseKubernetes(t testing.TB, cfg *config.Config) {
	t.Helper()
	cfg.Runtime.Driver = "kubernetes"
	cfg.Runtime.Kubernetes.Kubeconfig = Kubeconfig(t)
	cfg.Runtime.Kubernetes.Namespace = KubeNamespace(t)
	cfg.Runtime.Kubernetes.ImagePullPolicy = "Never"
	// A Pod requests what it is limited to, and the test node has 2 cores shared by every test
	// running at once: at the default of 1 core, the scheduler would fit two sandboxes.
	cfg.Sandbox.DefaultCPU = 0.1
}

// Workloads lists, by name and sorted, what the runtime holds for cfg's cluster (containers or
// Pods, running or not), read from the engine or API server directly, not through our driver.
func Workloads(t testing.TB, cfg *config.Config) []string {
	t.Helper()
	var names []string
	if cfg.Runtime.Driver == "kubernetes" {
		cs, _ := KubeClient(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pods, err := cs.CoreV1().Pods(cfg.Runtime.Kubernetes.Namespace).List(ctx, metav1.ListOptions{
			LabelSelector: runtimes.LabelCluster + "=" + cfg.Runtime.Cluster})
		if err != nil {
			t.Fatalf("listing pods: %v", err)
		}
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
	} else {
		names = Containers(t, Docker(t), cfg.Runtime.Cluster)
	}
	sort.Strings(names)
	return names
}

// RemoveWorkload deletes a sandbox's container or Pod behind the service's back, at once (no
// grace), as an operator or a failing node would.
func RemoveWorkload(t testing.TB, cfg *config.Config, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cfg.Runtime.Driver == "kubernetes" {
		cs, _ := KubeClient(t)
		zero := int64(0)
		err := cs.CoreV1().Pods(cfg.Runtime.Kubernetes.Namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("deleting pod %s: %v", name, err)
		}
		return
	}
	if _, err := Docker(t).ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatalf("removing container %s: %v", name, err)
	}
}

// RuntimeEnv is cfg's runtime section, and what the test driver changes in the sandbox section,
// as the environment variables an operator would set, for tests that run the real binary.
func RuntimeEnv(cfg *config.Config) map[string]string {
	env := map[string]string{"ORCH_RUNTIME_DRIVER": cfg.Runtime.Driver, "ORCH_RUNTIME_CLUSTER": cfg.Runtime.Cluster,
		"ORCH_SANDBOX_DEFAULT_CPU":       strconv.FormatFloat(cfg.Sandbox.DefaultCPU, 'f', -1, 64),
		"ORCH_SANDBOX_WARM_POOL_ENABLED": strconv.FormatBool(cfg.Sandbox.WarmPool.Enabled)}
	if cfg.Runtime.Driver == "kubernetes" {
		k := cfg.Runtime.Kubernetes
		env["KUBECONFIG"] = k.Kubeconfig
		env["ORCH_RUNTIME_KUBERNETES_NAMESPACE"] = k.Namespace
		env["ORCH_RUNTIME_KUBERNETES_IMAGE_PULL_POLICY"] = k.ImagePullPolicy
	} else {
		env["DOCKER_HOST"] = cfg.Runtime.DockerHost
	}
	return env
}
