package testenv

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// KubeExec runs argv in a Pod's container the way kubectl exec does (client-go's remotecommand,
// WebSocket with a SPDY fallback), not through our driver, and returns its exit status and its
// stdout and stderr together. Tests use it to check what a driver did, and benchmarks as the
// baseline the driver is measured against.
func KubeExec(t testing.TB, namespace, pod, container string, argv ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code, err := KubeExecTo(t.Context(), t, namespace, pod, container, &out, argv...)
	if err != nil {
		t.Fatalf("exec %v in %s/%s: %v", argv, namespace, pod, err)
	}
	return code, out.String()
}

// KubeExecTo is KubeExec writing the output to out, for callers that time it or run it in a loop.
func KubeExecTo(ctx context.Context, t testing.TB, namespace, pod, container string, out io.Writer, argv ...string) (int, error) {
	cs, cfg := KubeClient(t)
	req := cs.CoreV1().RESTClient().Post().Namespace(namespace).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return -1, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
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
