package kubernetes

import (
	"bytes"
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/insien/orchestrator/internal/runtimes"
)

// BenchmarkExecEcho compares `echo hi` through the driver's Exec (pid wrapper, output budget,
// exit status) with the plainest client-go exec of the same command (kubectl's executor), run in
// turns in the same loop so both see the same cluster. Target: ratio ≤ 1.2.
func BenchmarkExecEcho(b *testing.B) {
	h := newStreamHarness(b)
	pod := h.pod("bench", "sleep", "3600")
	ctx := context.Background()
	cmd := []string{"echo", "hi"}

	driver := func() {
		var out bytes.Buffer
		res, err := h.rt.Exec(ctx, pod, runtimes.ExecSpec{Cmd: cmd}, &out, nil, time.Minute, 0)
		if err != nil || res.ExitCode != 0 || out.String() != "hi\n" {
			b.Fatalf("driver: %q %+v %v", out.String(), res, err)
		}
	}
	direct := func() {
		req := h.rt.cs.CoreV1().RESTClient().Post().Namespace(h.rt.opts.Namespace).Resource("pods").Name(pod).
			SubResource("exec").VersionedParams(&corev1.PodExecOptions{Container: sandboxContainer, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
		spdy, err := remotecommand.NewSPDYExecutor(h.rt.rest, "POST", req.URL())
		if err != nil {
			b.Fatal(err)
		}
		ws, err := remotecommand.NewWebSocketExecutor(h.rt.rest, "GET", req.URL().String())
		if err != nil {
			b.Fatal(err)
		}
		ex, _ := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
		var out bytes.Buffer
		if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &out}); err != nil || out.String() != "hi\n" {
			b.Fatalf("direct: %q %v", out.String(), err)
		}
	}
	driver() // warm both paths up (TLS session state, the kubelet's first exec)
	direct()

	var viaDriver, viaClient time.Duration
	b.ResetTimer()
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
