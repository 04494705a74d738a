package kubernetes_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
	"github.com/insien/orchestrator/internal/runtimes/runtimetest"
	"github.com/insien/orchestrator/internal/runtimes/shell"
)

// The exec stream is the one thing the driver gives the shell layer (shell.Starter): these tests
// hold it to shell.Session's contract on a real cluster, below the conformance suite.

// streamHarness is a driver on the test cluster with the suite's Env to make sandboxes.
type streamHarness struct {
	t   *testing.T
	rt  *kubernetes.Runtime
	st  shell.Starter
	env *runtimetest.Env
}

func newStreamHarness(t *testing.T) *streamHarness {
	t.Helper()
	c := newCluster(t)
	env := runtimetest.NewEnv(t, c.harness(t))
	rt := c.driver(t, kubernetes.Options{Cluster: env.Cluster}, nil)
	return &streamHarness{t: t, rt: rt, st: kubernetes.NewStarter(rt), env: env}
}

func (h *streamHarness) ctx() context.Context { return h.env.Ctx() }

// sandbox creates and starts a sandbox running command (empty: the image's, which runs until
// stopped) and returns its id.
func (h *streamHarness) sandbox(command ...string) string {
	h.t.Helper()
	spec := h.env.Spec()
	spec.Command = command
	return h.env.MustStart(h.rt, spec)
}

// run streams cmd to its end and returns what it printed and how it ended.
func (h *streamHarness) run(id string, cmd shell.Command) (stdout, stderr string, code int, err error) {
	h.t.Helper()
	s, err := h.st.Start(h.ctx(), "exec", id, cmd)
	if err != nil {
		return "", "", -1, err
	}
	defer s.Close()
	var out, errOut bytes.Buffer
	if err := s.Copy(&out, &errOut); err != nil {
		return out.String(), errOut.String(), -1, err
	}
	code, err = s.Wait(h.ctx())
	return out.String(), errOut.String(), code, err
}

// copyInBackground copies a session's output into a buffer the test can read meanwhile.
func copyInBackground(s shell.Session) (*runtimetest.SyncBuffer, <-chan error) {
	var out runtimetest.SyncBuffer
	copied := make(chan error, 1)
	go func() { copied <- s.Copy(&out, &out) }()
	return &out, copied
}

func TestExecStream(t *testing.T) {
	h := newStreamHarness(t)
	id := h.sandbox()

	tests := []struct {
		name           string
		cmd            shell.Command
		stdout, stderr string
		code           int
	}{
		{"output apart and exit status", shell.Command{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}}, "out\n", "err\n", 3},
		{"success", shell.Command{Argv: []string{"true"}}, "", "", 0},
		{"killed by a signal", shell.Command{Argv: []string{"sh", "-c", "kill -9 $$"}}, "", "", 137},
		{"environment, values kept whole", shell.Command{Argv: []string{"sh", "-c", `printf '%s|' "$A" "$B"`}, Env: []string{"A=x y", "B=a=b\nc"}}, "x y|a=b\nc|", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code, err := h.run(id, tt.cmd)
			if err != nil || code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
				t.Errorf("got %q %q code %d err %v, want %q %q code %d", stdout, stderr, code, err, tt.stdout, tt.stderr, tt.code)
			}
		})
	}

	t.Run("no user but the sandbox's", func(t *testing.T) {
		if _, _, _, err := h.run(id, shell.Command{Argv: []string{"id"}, User: "1234"}); !errors.Is(err, runtimes.ErrNotSupported) {
			t.Errorf("exec as user 1234: %v, want ErrNotSupported", err)
		}
	})

	t.Run("stdin ends with CloseStdin", func(t *testing.T) {
		s, err := h.st.Start(h.ctx(), "exec", id, shell.Command{Argv: []string{"sh", "-c", "wc -c; echo done"}, Stdin: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		out, _ := copyInBackground(s)
		if _, err := s.Write(bytes.Repeat([]byte{0, 255, '\n'}, 100_000)); err != nil {
			t.Fatal(err)
		}
		if err := s.CloseStdin(); err != nil {
			t.Fatal(err)
		}
		if code, err := s.Wait(h.ctx()); err != nil || code != 0 || strings.Fields(out.String())[0] != "300000" {
			t.Errorf("got %q code %d err %v", out.String(), code, err)
		}
	})

	t.Run("terminal size, then a resize", func(t *testing.T) {
		// The server applies sizes on a goroutine of its own, so a line typed right after Start
		// (or after Resize) may be read before the size is set: each line prints the size, and
		// the test types until the size it set shows, then "q" to end.
		s, err := h.st.Start(h.ctx(), "terminal", id, shell.Command{Argv: []string{"sh", "-c", `while read x; do [ "$x" = q ] && exit 0; stty size; done`}, Stdin: true, TTY: true, Rows: 33, Cols: 101})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		out, _ := copyInBackground(s)
		typeUntil := func(what string) {
			t.Helper()
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(out.String(), what) {
				if time.Now().After(deadline) {
					t.Fatalf("the terminal never showed %q: %q", what, out.String())
				}
				if _, err := s.Write([]byte("a\r")); err != nil {
					t.Fatal(err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		typeUntil("33 101")
		if err := s.Resize(h.ctx(), 40, 120); err != nil {
			t.Fatal(err)
		}
		typeUntil("40 120")
		if _, err := s.Write([]byte("q\r")); err != nil {
			t.Fatal(err)
		}
		if code, err := s.Wait(h.ctx()); err != nil || code != 0 {
			t.Errorf("got %q code %d err %v", out.String(), code, err)
		}
	})

	t.Run("Close detaches, the exit status still arrives", func(t *testing.T) {
		s, err := h.st.Start(h.ctx(), "exec", id, shell.Command{Argv: []string{"sh", "-c", "echo started; sleep 1; echo late; exit 4"}})
		if err != nil {
			t.Fatal(err)
		}
		out, copied := copyInBackground(s)
		waitFor(t, 10*time.Second, "the first line", func() bool { return out.String() == "started\n" })
		s.Close()
		if err := <-copied; err == nil {
			t.Error("Copy after Close returned nil, want the session's end")
		}
		if code, err := s.Wait(h.ctx()); code != 4 || err != nil || out.String() != "started\n" {
			t.Errorf("after Close: code %d err %v output %q, want 4 and no more output", code, err, out.String())
		}
	})

	t.Run("a failing writer ends Copy at once", func(t *testing.T) {
		s, err := h.st.Start(h.ctx(), "exec", id, shell.Command{Argv: []string{"sh", "-c", "echo one; sleep 30"}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		start := time.Now()
		if err := s.Copy(failingWriter{}, nil); !errors.Is(err, errWriter) || time.Since(start) > 10*time.Second {
			t.Errorf("Copy into a failing writer: %v after %s, want its error at once", err, time.Since(start))
		}
	})
}

var errWriter = errors.New("writer gone")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errWriter }

func TestExecStreamRefusals(t *testing.T) {
	h := newStreamHarness(t)
	ended := h.sandbox("sh", "-c", "exit 7")
	waitFor(t, 30*time.Second, "the sandbox to end", func() bool {
		info, err := h.rt.Inspect(h.ctx(), ended)
		return err == nil && info.State == runtimes.StateExited
	})
	tests := []struct {
		name string
		id   string
		want error
	}{
		{"missing", "sbx-test-missing", runtimes.ErrNotFound},
		{"exited with 7", ended, &runtimes.NotRunningError{State: runtimes.StateExited, ExitCode: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.st.Start(h.ctx(), "exec", tt.id, shell.Command{Argv: []string{"true"}})
			var nr *runtimes.NotRunningError
			switch want := tt.want.(type) {
			case *runtimes.NotRunningError:
				if !errors.As(err, &nr) || *nr != *want {
					t.Errorf("Start: %v, want %v", err, want)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("Start: %v, want %v", err, want)
				}
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
