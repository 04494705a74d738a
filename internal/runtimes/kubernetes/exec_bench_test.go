package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
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
		var out bytes.Buffer
		if code, err := directExec(ctx, h.rt, pod, cmd, &out); err != nil || code != 0 || out.String() != "hi\n" {
			b.Fatalf("direct: %q %d %v", out.String(), code, err)
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

// directExec runs argv in the Pod's sandbox container the way kubectl exec does, with nothing of
// the driver: the benchmark's baseline, and the conformance harness's independent way in. Its
// stdout and stderr both go to out; a non-zero exit status is returned, not an error.
func directExec(ctx context.Context, rt *Runtime, pod string, argv []string, out io.Writer) (int, error) {
	req := rt.cs.CoreV1().RESTClient().Post().Namespace(rt.opts.Namespace).Resource("pods").Name(pod).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{Container: sandboxContainer, Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(rt.rest, "POST", req.URL())
	if err != nil {
		return -1, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(rt.rest, "GET", req.URL().String())
	if err != nil {
		return -1, err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return -1, err
	}
	// remotecommand copies stdout and stderr from two goroutines.
	w := &lockedWriter{w: out}
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
