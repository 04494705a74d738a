package runtimetest

import (
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Logs: the main process's output, streams apart, with tail, since, timestamps and follow.
func testLogs(t *testing.T, e *Env) {
	rt := e.runtime(Options{StopGrace: time.Second})
	spec := e.Spec()
	// A line on stderr, three on stdout, then one more line each time /tmp/go appears.
	spec.Command = []string{"sh", "-c", `echo oops >&2; sleep 0.1; echo one; echo two; echo three
n=0; while :; do if [ -e /tmp/go ]; then rm /tmp/go; n=$((n+1)); echo "late $n"; fi; sleep 0.05; done`}
	id := e.MustStart(rt, spec)

	logs := func(opts runtimes.LogOptions) (string, string) {
		t.Helper()
		var stdout, stderr SyncBuffer
		if err := rt.Logs(e.Ctx(), id, opts, &stdout, &stderr); err != nil {
			t.Fatalf("Logs(%+v): %v", opts, err)
		}
		return stdout.String(), stderr.String()
	}
	waitFor(t, 10*time.Second, "the first lines", func() bool {
		out, _ := logs(runtimes.LogOptions{Tail: -1})
		return strings.Contains(out, "three")
	})
	trigger := func(want string, sinks ...*SyncBuffer) {
		t.Helper()
		if code, out := e.Run(t, id, "touch", "/tmp/go"); code != 0 {
			t.Fatalf("touch: %s", out)
		}
		waitFor(t, 10*time.Second, want, func() bool {
			if len(sinks) > 0 {
				return strings.Contains(sinks[0].String(), want)
			}
			out, _ := logs(runtimes.LogOptions{Tail: -1})
			return strings.Contains(out, want)
		})
	}

	t.Run("all, streams apart", func(t *testing.T) {
		out, errOut := logs(runtimes.LogOptions{Tail: -1})
		wantOut, wantErr := "one\ntwo\nthree\n", "oops\n"
		if !rt.Capabilities().LogStreams {
			// One stream, in the order it was written.
			wantOut, wantErr = "oops\none\ntwo\nthree\n", ""
		}
		if out != wantOut || errOut != wantErr {
			t.Errorf("stdout %q, stderr %q; want %q, %q", out, errOut, wantOut, wantErr)
		}
	})
	t.Run("tail", func(t *testing.T) {
		if out, errOut := logs(runtimes.LogOptions{Tail: 2}); out != "two\nthree\n" || errOut != "" {
			t.Errorf("tail 2 = %q %q, want the last two lines", out, errOut)
		}
		if out, errOut := logs(runtimes.LogOptions{Tail: 0}); out != "" || errOut != "" {
			t.Errorf("tail 0 = %q %q, want nothing", out, errOut)
		}
	})
	t.Run("timestamps", func(t *testing.T) {
		out, _ := logs(runtimes.LogOptions{Tail: 1, Timestamps: true})
		ts, _, _ := strings.Cut(out, " ")
		if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || time.Since(at) > time.Minute {
			t.Errorf("timestamped line %q: %v", out, err)
		}
	})
	t.Run("since", func(t *testing.T) {
		time.Sleep(50 * time.Millisecond)
		since := time.Now()
		time.Sleep(50 * time.Millisecond)
		trigger("late 1")
		if out, errOut := logs(runtimes.LogOptions{Tail: -1, Since: since}); out != "late 1\n" || errOut != "" {
			t.Errorf("since = %q %q, want only the late line", out, errOut)
		}
	})
	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithCancel(e.Ctx())
		defer cancel()
		var stdout SyncBuffer
		done := make(chan error, 1)
		go func() { done <- rt.Logs(ctx, id, runtimes.LogOptions{Tail: 0, Follow: true}, &stdout, io.Discard) }()
		time.Sleep(200 * time.Millisecond) // let the follow begin
		trigger("late 2", &stdout)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Logs after cancel: %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Logs did not return after its ctx was cancelled")
		}
		if got := stdout.String(); got != "late 2\n" {
			t.Errorf("followed %q, want only the new line", got)
		}
	})
	t.Run("follow ends when the sandbox stops", func(t *testing.T) {
		running, _ := logs(runtimes.LogOptions{Tail: -1})
		done := make(chan error, 1)
		go func() {
			done <- rt.Logs(e.Ctx(), id, runtimes.LogOptions{Tail: 0, Follow: true}, io.Discard, io.Discard)
		}()
		time.Sleep(200 * time.Millisecond)
		if err := rt.Stop(e.Ctx(), id, time.Second); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Logs after the sandbox stopped: %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Logs kept following a stopped sandbox")
		}
		// A stopped sandbox's logs are still readable: all that was logged while it ran (with
		// stderr's line or not: see LogStreams).
		if out, _ := logs(runtimes.LogOptions{Tail: -1}); !strings.Contains(running, "one\ntwo\nthree\n") || !strings.HasPrefix(out, running) {
			t.Errorf("logs of the stopped sandbox = %q, want what it logged while running, %q", out, running)
		}
	})
	t.Run("missing sandbox", func(t *testing.T) {
		err := rt.Logs(e.Ctx(), "sbx-test-does-not-exist", runtimes.LogOptions{Tail: -1}, io.Discard, io.Discard)
		if !errors.Is(err, runtimes.ErrNotFound) {
			t.Errorf("Logs: %v, want ErrNotFound", err)
		}
	})
}

// Stats: memory against its limit, processes, and CPU use bounded by the sandbox's CPU limit.
func testStats(t *testing.T, e *Env) {
	rt := e.runtime(Options{StopGrace: time.Second})
	spec := e.Spec() // 64 MiB, 0.5 CPU
	id := e.MustStart(rt, spec)

	s, err := rt.Stats(e.Ctx(), id)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if s.MemoryLimitBytes != 64<<20 {
		t.Errorf("MemoryLimitBytes = %d, want %d", s.MemoryLimitBytes, 64<<20)
	}
	if s.MemoryBytes == 0 || s.MemoryBytes > s.MemoryLimitBytes {
		t.Errorf("MemoryBytes = %d, want in (0, %d]", s.MemoryBytes, s.MemoryLimitBytes)
	}
	t.Logf("idle: %+v", s)
	if s.Pids < 1 || s.CPUPercent < 0 || time.Since(s.At) > time.Minute {
		t.Errorf("Stats = %+v, want pids >= 1, CPU >= 0, taken now", s)
	}

	// A busy loop, left running in the background.
	if _, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh", "-c", "while :; do :; done >/dev/null 2>&1 &"}}, nil, nil, time.Minute, 0); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	s, err = rt.Stats(e.Ctx(), id)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	t.Logf("busy: %+v", s)
	// The sandbox is limited to half a core: the loop shows about 50%.
	if s.CPUPercent < 10 || s.CPUPercent > 80 {
		t.Errorf("CPUPercent with a busy loop under a 0.5 CPU limit = %.1f, want about 50", s.CPUPercent)
	}

	if e.canPause(rt) {
		if err := rt.Pause(e.Ctx(), id); err != nil {
			t.Fatalf("Pause: %v", err)
		}
		if s, err := rt.Stats(e.Ctx(), id); err != nil || s.CPUPercent > 1 {
			t.Errorf("Stats of a paused sandbox = %+v, %v; want a sample with no CPU use", s, err)
		}
	}
	if err := rt.Stop(e.Ctx(), id, time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := rt.Stats(e.Ctx(), id); !errors.Is(err, runtimes.ErrNotRunning) {
		t.Errorf("Stats of a stopped sandbox: %v, want ErrNotRunning", err)
	}
}

// screen collects what a terminal prints.
func screen(t *testing.T, term runtimes.Terminal) (*SyncBuffer, <-chan struct{}) {
	t.Helper()
	var out SyncBuffer
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		_, _ = io.Copy(&out, term)
	}()
	return &out, eof
}

// Terminal: an interactive shell with resize, its exit status, Close killing what it started.
func testTerminal(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())

	t.Run("shell session", func(t *testing.T) {
		term, err := rt.Terminal(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh"}}, 24, 80)
		if err != nil {
			t.Fatalf("Terminal: %v", err)
		}
		defer term.Close()
		out, eof := screen(t, term)
		send := func(s string) {
			t.Helper()
			if _, err := io.WriteString(term, s); err != nil {
				t.Fatalf("write %q: %v", s, err)
			}
		}
		// The terminal echoes input, so the command is written so that only running it prints "hello".
		send("echo \"hel\"\"lo\"\n")
		waitFor(t, 10*time.Second, "hello", func() bool { return strings.Contains(out.String(), "hello\r\n") })
		send("stty size\n")
		waitFor(t, 10*time.Second, "24 80", func() bool { return strings.Contains(out.String(), "24 80") })
		if err := term.Resize(e.Ctx(), 40, 100); err != nil {
			t.Fatalf("Resize: %v", err)
		}
		send("stty size\n")
		waitFor(t, 10*time.Second, "40 100", func() bool { return strings.Contains(out.String(), "40 100") })
		send("exit\n")
		code, err := term.Wait(e.Ctx())
		if err != nil || code != 0 {
			t.Errorf("Wait = %d, %v; want 0", code, err)
		}
		select {
		case <-eof:
		case <-time.After(5 * time.Second):
			t.Error("no EOF after the shell exited")
		}
		if regexp.MustCompile(`^\d+\r?\n`).MatchString(out.String()) {
			t.Errorf("the wrapper's pid line reached the screen: %q", out.String())
		}
	})

	t.Run("exit status", func(t *testing.T) {
		term, err := rt.Terminal(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh", "-c", "read x; exit $x"}}, 24, 80)
		if err != nil {
			t.Fatalf("Terminal: %v", err)
		}
		defer term.Close()
		_, _ = screen(t, term)
		_, _ = io.WriteString(term, "5\n")
		if code, err := term.Wait(e.Ctx()); err != nil || code != 5 {
			t.Errorf("Wait = %d, %v; want 5", code, err)
		}
	})

	t.Run("close kills the session", func(t *testing.T) {
		term, err := rt.Terminal(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh"}}, 24, 80)
		if err != nil {
			t.Fatalf("Terminal: %v", err)
		}
		out, eof := screen(t, term)
		_, _ = io.WriteString(term, "sleep 301 & sleep 302\n")
		waitFor(t, 10*time.Second, "the sleeps", func() bool { return leftover(t, e, id, "sleep 30") != "" })
		if err := term.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-eof
		if left := leftover(t, e, id, "sleep 30"); left != "" {
			t.Errorf("processes left after Close: %s (screen %q)", left, out.String())
		}
		if err := term.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})

	t.Run("not running", func(t *testing.T) {
		for state, id := range e.notRunning(rt) {
			if _, err := rt.Terminal(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh"}}, 24, 80); !errors.Is(err, runtimes.ErrNotRunning) {
				t.Errorf("Terminal in a %s sandbox: %v, want ErrNotRunning", state, err)
			}
		}
	})
}
