package kubernetes_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
	"github.com/insien/orchestrator/internal/testenv"
)

// BenchmarkExecEcho compares `echo hi` through the driver's Exec (pid wrapper, output budget,
// exit status) with the plainest client-go exec of the same command (kubectl's executor), run in
// turns in the same loop so both see the same cluster. Target: ratio ≤ 1.2.
func BenchmarkExecEcho(b *testing.B) {
	c := newCluster(b)
	rt := c.driver(b, kubernetes.Options{Cluster: "bench"}, nil)
	ctx := context.Background()
	id, err := rt.Create(ctx, runtimes.Spec{Name: "sbx-bench", Image: testenv.Image(b), CPU: 1, MemoryMB: 64})
	if err != nil {
		b.Fatal(err)
	}
	if err := rt.Start(ctx, id); err != nil {
		b.Fatal(err)
	}
	cmd := []string{"echo", "hi"}
	driver := func() {
		var out bytes.Buffer
		res, err := rt.Exec(ctx, id, runtimes.ExecSpec{Cmd: cmd}, &out, nil, time.Minute, 0)
		if err != nil || res.ExitCode != 0 || out.String() != "hi\n" {
			b.Fatalf("driver: %q %+v %v", out.String(), res, err)
		}
	}
	direct := func() {
		var out bytes.Buffer
		code, err := testenv.KubeExecTo(ctx, b, c.ns, id, kubernetes.SandboxContainer, &out, cmd...)
		if err != nil || code != 0 || out.String() != "hi\n" {
			b.Fatalf("client-go: %q %d %v", out.String(), code, err)
		}
	}
	// KubeExecTo builds its client (kubeconfig, TLS material) on every call, which an exec through
	// the driver does not: that part is timed apart and taken out of the baseline.
	setup := func() { testenv.KubeClient(b) }
	driver() // warm both paths up (the kubelet's first exec in the container)
	direct()

	var viaDriver, viaClient, clientSetup time.Duration
	for b.Loop() {
		t0 := time.Now()
		driver()
		t1 := time.Now()
		direct()
		t2 := time.Now()
		setup()
		viaDriver += t1.Sub(t0)
		viaClient += t2.Sub(t1)
		clientSetup += time.Since(t2)
	}
	n := float64(b.N)
	viaClient -= clientSetup
	b.ReportMetric(float64(viaDriver.Microseconds())/n/1000, "driver-ms/op")
	b.ReportMetric(float64(viaClient.Microseconds())/n/1000, "client-go-ms/op")
	b.ReportMetric(float64(clientSetup.Microseconds())/n/1000, "client-setup-ms/op")
	b.ReportMetric(float64(viaDriver)/float64(viaClient), "ratio")
}
