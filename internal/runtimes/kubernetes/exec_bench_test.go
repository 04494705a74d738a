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
		if code, err := c.exec(ctx, id, cmd, &out); err != nil || code != 0 || out.String() != "hi\n" {
			b.Fatalf("client-go: %q %d %v", out.String(), code, err)
		}
	}
	driver() // warm both paths up (the kubelet's first exec in the container)
	direct()

	var viaDriver, viaClient time.Duration
	for b.Loop() {
		t0 := time.Now()
		driver()
		t1 := time.Now()
		direct()
		viaDriver += t1.Sub(t0)
		viaClient += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(viaDriver.Microseconds())/n/1000, "driver-ms/op")
	b.ReportMetric(float64(viaClient.Microseconds())/n/1000, "client-go-ms/op")
	b.ReportMetric(float64(viaDriver)/float64(viaClient), "ratio")
}
