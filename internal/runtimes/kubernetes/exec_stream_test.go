package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/runtimetest"
)

// streamHarness is a driver on the test cluster, in a namespace of the test's own, with the
// suite's Env to make sandboxes.
type streamHarness struct {
	t   testing.TB
	rt  *Runtime
	env *runtimetest.Env
}

func newStreamHarness(t *testing.T) *streamHarness {
	t.Helper()
	h := suiteHarness(t)
	env := runtimetest.NewEnv(t, h)
	rt := h.New(t, runtimetest.Options{Cluster: env.Cluster}).(*Runtime)
	return &streamHarness{t: t, rt: rt, env: env}
}

func (h *streamHarness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	h.t.Cleanup(cancel)
	return ctx
}

// sandbox creates and starts a sandbox running command (empty: the image's, which runs until
// stopped) and returns its id.
func (h *streamHarness) sandbox(command ...string) string {
	h.t.Helper()
	spec := h.env.Spec()
	spec.Command = command
	return h.env.MustStart(h.rt, spec)
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
	pod := h.sandbox()

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
	ended := h.sandbox("sh", "-c", "exit 7")
	waitFor(t, 30*time.Second, "the sandbox to end", func() bool {
		info, err := h.rt.Inspect(h.ctx(), ended)
		return err == nil && info.State == runtimes.StateExited
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
