package kubernetes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/testenv"
)

// streamHarness is a namespace of its own on the test cluster and a driver for it.
type streamHarness struct {
	t  testing.TB
	rt *Runtime
}

func newStreamHarness(t testing.TB) *streamHarness {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := "ki-test-" + hex.EncodeToString(b)
	rt, err := New(Options{Kubeconfig: testenv.Require(t, "ORCH_TEST_KUBECONFIG"), Namespace: ns}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rt.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		zero := int64(0)
		_ = rt.cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	return &streamHarness{t: t, rt: rt}
}

func (h *streamHarness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	h.t.Cleanup(cancel)
	return ctx
}

// pod creates a plain Pod running command and waits until its container runs (or has ended,
// when the command ends at once).
func (h *streamHarness) pod(name string, command ...string) string {
	h.t.Helper()
	no := false
	zero := int64(0)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{
				Name:            sandboxContainer,
				Image:           testenv.Image(h.t),
				ImagePullPolicy: corev1.PullNever,
				Command:         command,
			}},
		},
	}
	pods := h.rt.cs.CoreV1().Pods(h.rt.opts.Namespace)
	ctx := h.ctx()
	for {
		_, err := pods.Create(ctx, pod, metav1.CreateOptions{})
		if err == nil {
			break
		}
		// The namespace's default ServiceAccount appears a moment after the namespace.
		if !apierrors.IsForbidden(err) || ctx.Err() != nil {
			h.t.Fatalf("creating pod %s: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			h.t.Fatal(err)
		}
		if state, _, _ := podState(p); state == runtimes.StateRunning || state == runtimes.StateExited {
			return name
		}
		select {
		case <-ctx.Done():
			h.t.Fatalf("pod %s did not start: %+v", name, p.Status)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// run streams cmd to its end and returns what it printed and how it ended.
func (h *streamHarness) run(pod string, s streamSpec) (stdout, stderr string, code int, err error) {
	h.t.Helper()
	st, err := h.rt.startStream(h.ctx(), "exec", pod, s)
	if err != nil {
		return "", "", -1, err
	}
	defer st.Close()
	var out, errOut bytes.Buffer
	if err := st.Copy(&out, &errOut); err != nil {
		return out.String(), errOut.String(), -1, err
	}
	code, err = st.Wait(h.ctx())
	return out.String(), errOut.String(), code, err
}

// copyInBackground copies a stream's output into a buffer the test can read meanwhile.
func copyInBackground(st *execStream) (*syncBuffer, <-chan error) {
	var out syncBuffer
	copied := make(chan error, 1)
	go func() { copied <- st.Copy(&out, &out) }()
	return &out, copied
}

func TestExecStream(t *testing.T) {
	h := newStreamHarness(t)
	pod := h.pod("sleeper", "sleep", "3600")

	tests := []struct {
		name           string
		cmd            []string
		stdout, stderr string
		code           int
	}{
		{"output apart and exit status", []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, "out\n", "err\n", 3},
		{"success", []string{"true"}, "", "", 0},
		{"killed by a signal", []string{"sh", "-c", "kill -9 $$"}, "", "", 137},
		{"missing program", []string{"/no/such/program"}, "", "", -2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code, err := h.run(pod, streamSpec{cmd: tt.cmd})
			if tt.code == -2 {
				// The runtime refuses to start it: an error, never a zero status.
				if err == nil && code == 0 {
					t.Fatalf("a missing program ran: %q %q", stdout, stderr)
				}
				t.Logf("missing program: code %d, %v", code, err)
				return
			}
			if err != nil || code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
				t.Errorf("got %q %q code %d err %v, want %q %q code %d", stdout, stderr, code, err, tt.stdout, tt.stderr, tt.code)
			}
		})
	}

	t.Run("stdin ends with its writer", func(t *testing.T) {
		st, err := h.rt.startStream(h.ctx(), "exec", pod, streamSpec{cmd: []string{"sh", "-c", "wc -c; echo done"}, stdin: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		out, _ := copyInBackground(st)
		if _, err := st.Write(bytes.Repeat([]byte{0, 255, '\n'}, 100_000)); err != nil {
			t.Fatal(err)
		}
		if err := st.CloseStdin(); err != nil {
			t.Fatal(err)
		}
		if code, err := st.Wait(h.ctx()); err != nil || code != 0 || out.String() != "300000\ndone\n" {
			t.Errorf("got %q code %d err %v", out.String(), code, err)
		}
	})

	t.Run("terminal size", func(t *testing.T) {
		st, err := h.rt.startStream(h.ctx(), "terminal", pod, streamSpec{cmd: []string{"sh", "-c", "stty size; read x; stty size"}, stdin: true, tty: true, rows: 33, cols: 101})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		out, _ := copyInBackground(st)
		waitFor(t, 10*time.Second, "the first size", func() bool { return strings.Contains(out.String(), "33 101") })
		if err := st.Resize(h.ctx(), 40, 120); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // the resize travels on its own channel
		if _, err := st.Write([]byte("go\r")); err != nil {
			t.Fatal(err)
		}
		if code, err := st.Wait(h.ctx()); err != nil || code != 0 || !strings.Contains(out.String(), "40 120") {
			t.Errorf("got %q code %d err %v", out.String(), code, err)
		}
	})

	t.Run("closed before the end", func(t *testing.T) {
		// Close detaches: the output stops at once, and the exit status still arrives.
		st, err := h.rt.startStream(h.ctx(), "exec", pod, streamSpec{cmd: []string{"sh", "-c", "echo started; sleep 1; echo late; exit 4"}})
		if err != nil {
			t.Fatal(err)
		}
		out, copied := copyInBackground(st)
		waitFor(t, 10*time.Second, "the first line", func() bool { return out.String() == "started\n" })
		st.Close()
		if err := <-copied; !errors.Is(err, errDetached) {
			t.Errorf("Copy after Close: %v, want errDetached", err)
		}
		if code, err := st.Wait(h.ctx()); code != 4 || err != nil || out.String() != "started\n" {
			t.Errorf("after Close: code %d err %v output %q, want 4 and no more output", code, err, out.String())
		}
	})
}

func TestStreamErrors(t *testing.T) {
	h := newStreamHarness(t)
	ended := h.pod("ended", "sh", "-c", "exit 7")
	waitFor(t, 30*time.Second, "the pod to end", func() bool {
		p, err := h.rt.cs.CoreV1().Pods(h.rt.opts.Namespace).Get(h.ctx(), ended, metav1.GetOptions{})
		return err == nil && (p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded)
	})
	tests := []struct {
		pod   string
		check func(error) error
	}{
		{"missing", func(err error) error {
			if !errors.Is(err, runtimes.ErrNotFound) {
				return fmt.Errorf("%v, want ErrNotFound", err)
			}
			return nil
		}},
		{ended, func(err error) error {
			var nr *runtimes.NotRunningError
			if !errors.As(err, &nr) || nr.State != runtimes.StateExited || nr.ExitCode != 7 {
				return fmt.Errorf("%v, want NotRunningError exited with 7", err)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.pod, func(t *testing.T) {
			_, _, code, err := h.run(tt.pod, streamSpec{cmd: []string{"true"}})
			if err == nil {
				t.Fatalf("exec in %s ran (code %d)", tt.pod, code)
			}
			if cerr := tt.check(err); cerr != nil {
				t.Error(cerr)
			}
		})
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer that a test may read while a stream writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
