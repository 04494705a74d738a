package handlers_test

import (
	"context"
	"io"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// startKubernetesIdentity is a service on the Kubernetes driver, in a namespace of its own.
func startKubernetesIdentity(b *testing.B) *identity {
	return startIdentity(b, func(c *config.Config, _ *clerkstub.Server) {
		testenv.UseKubernetes(b, c)
		c.Sandbox.MaxPerUser, c.Sandbox.MaxPerInstance = 1000, 1000
	})
}

// BenchmarkKubernetesCreateToRunning compares POST /api/sandboxes on the Kubernetes driver
// (authentication, validation, the quota transaction, the Pod's create, its wait for Running,
// the state change) with creating the very same Pod (read back from the API server) straight
// through client-go and watching it until Running, alternating the two in one run. It reports
// p50 and p95 of each and the API/direct ratios. Samples: max(b.N, 10).
func BenchmarkKubernetesCreateToRunning(b *testing.B) {
	id := startKubernetesIdentity(b)
	u := newSandboxUser(b, id, "user_bench_k8s_create")
	cs, _ := testenv.KubeClient(b)
	ns := id.cfg.Runtime.Kubernetes.Namespace
	ctx := context.Background()

	// The template: what the driver made for the same request, minus what the server assigned.
	first := u.create(b, `{"memory_mb":64}`)
	made, err := cs.CoreV1().Pods(ns).Get(ctx, "sbx-"+first.ID, metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	template := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"bench": "direct"}}, Spec: *made.Spec.DeepCopy()}
	template.Spec.NodeName, template.Spec.SchedulingGates = "", nil

	samples := max(b.N, 10)
	var api, raw []time.Duration
	b.ResetTimer()
	for i := range samples {
		start := time.Now()
		sb := u.create(b, `{"memory_mb":64}`)
		api = append(api, time.Since(start))

		pod := template.DeepCopy()
		pod.Name = "bench-direct-" + sb.ID[:8]
		start = time.Now()
		if err := createPodAndWait(ctx, cs, ns, pod); err != nil {
			b.Fatalf("direct #%d: %v", i, err)
		}
		raw = append(raw, time.Since(start))

		b.StopTimer()
		u.do(b, "DELETE", "/api/sandboxes/"+sb.ID, "")
		zero := int64(0)
		_ = cs.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		b.StartTimer()
	}
	b.StopTimer()
	reportLatencies(b, api, raw)
}

// createPodAndWait creates pod and watches it (no polling) until it runs.
func createPodAndWait(ctx context.Context, cs kubernetes.Interface, ns string, pod *corev1.Pod) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", pod.Name).String()})
	if err != nil {
		return err
	}
	defer w.Stop()
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return err
	}
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*corev1.Pod); ok && p.Status.Phase == corev1.PodRunning {
			return nil
		}
	}
	return ctx.Err()
}

// BenchmarkKubernetesExecEcho compares POST /api/sandboxes/{id}/exec of `echo hi` on the
// Kubernetes driver with the same command through a plain client-go exec (what kubectl exec
// does), alternating the two. It reports p50 and p95 of each and the API/direct ratios.
func BenchmarkKubernetesExecEcho(b *testing.B) {
	id := startKubernetesIdentity(b)
	u := newSandboxUser(b, id, "user_bench_k8s_exec")
	sb := u.create(b, `{}`)
	ns := id.cfg.Runtime.Kubernetes.Namespace
	samples := max(b.N, 50)
	var api, raw []time.Duration
	b.ResetTimer()
	for range samples {
		start := time.Now()
		if res := u.exec(b, sb.ID, map[string]any{"cmd": []string{"echo", "hi"}}); res.Stdout != "hi\n" {
			b.Fatalf("api exec: %+v", res)
		}
		api = append(api, time.Since(start))

		start = time.Now()
		if code, err := testenv.KubeExecTo(context.Background(), b, ns, "sbx-"+sb.ID, "sandbox", io.Discard, "echo", "hi"); code != 0 || err != nil {
			b.Fatalf("direct exec: %d %v", code, err)
		}
		raw = append(raw, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, api, raw)
}
