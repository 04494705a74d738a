package kubernetes_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
)

// BenchmarkCreateToRunning compares the driver's Create and Start of a sandbox with the plainest
// client-go way to the same running Pod: create the driver's own Pod (without its start gate)
// and follow a watch from the create's resourceVersion until the container runs. Both run in
// turns in the same loop, so both see the same cluster; removals are not timed. Target: ratio
// ≤ 1.15.
func BenchmarkCreateToRunning(b *testing.B) {
	c := newClusterTest(b)
	r := c.runtime(kubernetes.Options{})
	ctx := context.Background()

	driver := func() string { return c.start(r, c.spec()) }
	direct := func() string {
		p, err := r.PodFor(c.spec())
		if err != nil {
			b.Fatal(err)
		}
		p.Spec.SchedulingGates = nil
		if err := runPod(ctx, r, p); err != nil {
			b.Fatalf("direct: %v", err)
		}
		return p.Name
	}
	remove := func(names ...string) {
		for _, n := range names {
			if err := r.Remove(ctx, n); err != nil {
				b.Fatal(err)
			}
		}
	}
	remove(driver(), direct()) // warm both paths up (the NetworkPolicy, connections, the image)

	var viaDriver, viaClient time.Duration
	timed := func(total *time.Duration, run func() string) string {
		t0 := time.Now()
		defer func() { *total += time.Since(t0) }()
		return run()
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Each goes first every other time: the one right after the removals shares the node
		// with their teardown.
		var d, p string
		if i%2 == 0 {
			d, p = timed(&viaDriver, driver), timed(&viaClient, direct)
		} else {
			p, d = timed(&viaClient, direct), timed(&viaDriver, driver)
		}
		b.StopTimer()
		remove(d, p)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(viaDriver.Microseconds())/n/1000, "driver-ms/op")
	b.ReportMetric(float64(viaClient.Microseconds())/n/1000, "client-go-ms/op")
	b.ReportMetric(float64(viaDriver)/float64(viaClient), "ratio")
}

// runPod creates p with client-go and waits on a watch until its container runs.
func runPod(ctx context.Context, r *kubernetes.Runtime, p *corev1.Pod) error {
	pods := r.Clientset().CoreV1().Pods(p.Namespace)
	created, err := pods.Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", p.Name).String(),
		ResourceVersion: created.ResourceVersion,
		TimeoutSeconds:  ptr.To[int64](60),
	})
	if err != nil {
		return err
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Modified && p.Status.Phase == corev1.PodRunning {
			return nil
		}
	}
	return fmt.Errorf("pod %s not running within the watch", p.Name)
}
