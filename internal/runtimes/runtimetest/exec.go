package runtimetest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
)

// SyncBuffer is an io.Writer that a test can read while Exec (or a follower) writes to it; drivers' own
// tests use it too.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exec: exit codes, stdout and stderr apart (merged on a TTY), env, work directory, stdin, user, argv passed as is.
func testExec(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())

	cases := []struct {
		name       string
		spec       runtimes.ExecSpec
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"exit 0", runtimes.ExecSpec{Cmd: []string{"echo", "hi"}}, 0, "hi\n", ""},
		{"exit 3", runtimes.ExecSpec{Cmd: []string{"sh", "-c", "exit 3"}}, 3, "", ""},
		{"stderr is separate", runtimes.ExecSpec{Cmd: []string{"sh", "-c", "echo out; echo err >&2"}}, 0, "out\n", "err\n"},
		{"env and work dir", runtimes.ExecSpec{
			Cmd:     []string{"sh", "-c", `echo "$GREETING"; pwd`},
			Env:     map[string]string{"GREETING": "hello world"},
			WorkDir: "/tmp",
		}, 0, "hello world\n/tmp\n", ""},
		{"default work dir", runtimes.ExecSpec{Cmd: []string{"pwd"}}, 0, "/workspace\n", ""},
		{"stdin piped", runtimes.ExecSpec{Cmd: []string{"cat"}, Stdin: strings.NewReader("line 1\nline 2\n")}, 0, "line 1\nline 2\n", ""},
		{"no stdin reads EOF", runtimes.ExecSpec{Cmd: []string{"cat"}}, 0, "", ""},
		{"user", runtimes.ExecSpec{Cmd: []string{"id", "-u"}, User: "1234"}, 0, "1234\n", ""},
		{"argv is not re-parsed", runtimes.ExecSpec{Cmd: []string{"echo", "$HOME", "a  b", "; exit 9"}}, 0, "$HOME a  b ; exit 9\n", ""},
		// The terminal echoes the input; ^D ends it; cat prints the line once more.
		{"tty stdin", runtimes.ExecSpec{Cmd: []string{"cat"}, TTY: true, Stdin: strings.NewReader("abc\n\x04")}, 0, "abc\r\nabc\r\n", ""},
		{"tty merges streams", runtimes.ExecSpec{Cmd: []string{"sh", "-c", "echo out; echo err >&2"}, TTY: true}, 0, "out\r\nerr\r\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr SyncBuffer
			res, err := rt.Exec(e.Ctx(), id, c.spec, &stdout, &stderr, 30*time.Second, 0)
			if c.spec.User != "" && !rt.Capabilities().ExecUser {
				// A driver that cannot choose the user says so, and runs nothing.
				if !errors.Is(err, runtimes.ErrNotSupported) {
					t.Errorf("Exec as user %s without Capabilities.ExecUser: %v, want ErrNotSupported", c.spec.User, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			if res.ExitCode != c.wantCode || res.TimedOut || res.Truncated {
				t.Errorf("result = %+v, want exit %d, not timed out or truncated", res, c.wantCode)
			}
			if stdout.String() != c.wantStdout || stderr.String() != c.wantStderr {
				t.Errorf("stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), c.wantStdout, c.wantStderr)
			}
			if res.Duration <= 0 || res.Duration > 30*time.Second {
				t.Errorf("Duration = %v", res.Duration)
			}
		})
	}

	t.Run("command not found", func(t *testing.T) {
		var stderr SyncBuffer
		res, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"no-such-command"}}, nil, &stderr, 0, 0)
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		if res.ExitCode != 127 || !strings.Contains(stderr.String(), "no-such-command") {
			t.Errorf("exit %d, stderr %q; want 127 and a message naming the command", res.ExitCode, stderr.String())
		}
	})
	t.Run("empty command", func(t *testing.T) {
		if _, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{}, nil, nil, 0, 0); err == nil {
			t.Error("Exec of an empty command: nil error")
		}
	})
}

// leftover reports the processes whose command line contains marker.
func leftover(t *testing.T, e *Env, id, marker string) string {
	t.Helper()
	_, ps := e.Run(t, id, "ps", "-o", "pid,args")
	var found []string
	for line := range strings.SplitSeq(ps, "\n") {
		if strings.Contains(line, marker) {
			found = append(found, strings.TrimSpace(line))
		}
	}
	return strings.Join(found, "; ")
}

// ExecTimeoutKillsProcessTree: at the timeout every process the command started is killed, however it
// hid (in the background, in nested shells, ignoring TERM, holding or closing its output).
func testExecTimeoutKillsProcessTree(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())

	cases := []struct {
		name   string
		script string
		marker string
	}{
		{"background and foreground", "sleep 101 & sleep 102", "sleep 10"},
		{"nested shells", `sh -c 'sleep 103 & sh -c "sleep 104"' & wait`, "sleep 10"},
		// The command stops reading and keeps its output open in the background.
		{"output held open", `exec 2>&1; (sleep 105; echo never) & sleep 106`, "sleep 10"},
		{"trap ignoring TERM", `trap '' TERM INT HUP; sleep 107`, "sleep 107"},
		// The output ends long before the command does.
		{"output closed early", `exec >/dev/null 2>&1; sleep 108`, "sleep 108"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout SyncBuffer
			start := time.Now()
			res, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh", "-c", "echo started; " + c.script}}, &stdout, nil, time.Second, 0)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			if !res.TimedOut || res.ExitCode != 137 {
				t.Errorf("result = %+v, want TimedOut and exit 137", res)
			}
			if took > 5*time.Second {
				t.Errorf("Exec returned %v after start; the timeout was 1s", took)
			}
			if stdout.String() != "started\n" {
				t.Errorf("stdout = %q, want the output before the kill", stdout.String())
			}
			if left := leftover(t, e, id, c.marker); left != "" {
				t.Errorf("processes left after the timeout: %s", left)
			}
		})
	}
}

// ExecCancelKillsProcessTree: a cancelled caller returns at once, and the command's processes are gone.
func testExecCancelKillsProcessTree(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())

	ctx, cancel := context.WithCancel(e.Ctx())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	res, err := rt.Exec(ctx, id, runtimes.ExecSpec{Cmd: []string{"sh", "-c", "sleep 201 & sleep 202"}}, nil, nil, time.Minute, 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Exec after cancel: %v, want context.Canceled", err)
	}
	if res.TimedOut {
		t.Errorf("TimedOut = true after a cancellation")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Exec returned %v after start; it was cancelled after 0.5s", took)
	}
	if left := leftover(t, e, id, "sleep 20"); left != "" {
		t.Errorf("processes left after cancellation: %s", left)
	}
}

// countingWriter counts what it receives and keeps nothing.
type countingWriter struct {
	mu sync.Mutex
	n  int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += int64(len(p))
	return len(p), nil
}

// ExecOutputCap: output past maxOutput, counted over both streams, is drained and dropped, not buffered.
func testExecOutputCap(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())
	const limit = 1 << 20

	t.Run("200 MB is cut at the cap", func(t *testing.T) {
		var stdout, stderr countingWriter
		cmd := Script(`$(tool head) -c 200000000 /dev/zero; echo done >&2`)
		res, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: cmd}, &stdout, &stderr, time.Minute, limit)
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		// The command ran to its end: the output was drained, not the command killed.
		if !res.Truncated || res.TimedOut || res.ExitCode != 0 {
			t.Errorf("result = %+v, want Truncated, exit 0", res)
		}
		if stdout.n+stderr.n != limit {
			t.Errorf("writers received %d+%d bytes, want %d in total", stdout.n, stderr.n, limit)
		}
	})
	t.Run("the cap spans both streams", func(t *testing.T) {
		var stdout, stderr SyncBuffer
		res, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh", "-c", "echo 12345; sleep 0.2; echo 67890 >&2"}}, &stdout, &stderr, time.Minute, 8)
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		if got := stdout.String() + "|" + stderr.String(); got != "12345\n|67" || !res.Truncated {
			t.Errorf("stdout|stderr = %q, Truncated=%v; want \"12345\\n|67\", true", got, res.Truncated)
		}
	})
	t.Run("exactly the cap is not truncated", func(t *testing.T) {
		var stdout SyncBuffer
		res, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"echo", "1234"}}, &stdout, nil, time.Minute, 5)
		if err != nil || res.Truncated || stdout.String() != "1234\n" {
			t.Errorf("Exec = %+v, %v, stdout %q; want all 5 bytes, not truncated", res, err, stdout.String())
		}
	})
}

// firstWrite records when its first bytes arrived.
type firstWrite struct {
	SyncBuffer
	once sync.Once
	at   chan time.Time
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.once.Do(func() { w.at <- time.Now() })
	return w.SyncBuffer.Write(p)
}

// ExecStreamsIncrementally: output reaches the writer as it is printed, not when the command ends.
func testExecStreamsIncrementally(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())

	w := &firstWrite{at: make(chan time.Time, 1)}
	res, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh", "-c", "echo a; sleep 1; echo b"}}, w, nil, time.Minute, 0)
	returned := time.Now()
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec = %+v, %v", res, err)
	}
	first := <-w.at
	if gap := returned.Sub(first); gap < 700*time.Millisecond {
		t.Errorf("first output arrived %v before Exec returned; want about 1s (it was buffered)", gap)
	}
	if w.String() != "a\nb\n" {
		t.Errorf("output = %q", w.String())
	}
}

// ExecNotRunning: nothing runs in a sandbox that is stopped, only created or paused: ErrNotRunning; in a
// missing one: ErrNotFound.
func testExecNotRunning(t *testing.T, e *Env) {
	rt := e.runtime(Options{StopGrace: time.Second})
	for name, id := range e.notRunning(rt) {
		t.Run(name, func(t *testing.T) {
			_, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"true"}}, nil, nil, time.Minute, 0)
			if !errors.Is(err, runtimes.ErrNotRunning) {
				t.Errorf("Exec: %v, want ErrNotRunning", err)
			}
			if _, _, err := rt.ReadFile(e.Ctx(), id, "/etc/hostname"); !errors.Is(err, runtimes.ErrNotRunning) {
				t.Errorf("ReadFile: %v, want ErrNotRunning", err)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := rt.Exec(e.Ctx(), "sbx-test-does-not-exist", runtimes.ExecSpec{Cmd: []string{"true"}}, nil, nil, time.Minute, 0)
		if !errors.Is(err, runtimes.ErrNotFound) {
			t.Errorf("Exec: %v, want ErrNotFound", err)
		}
	})
}

// ExecWorkDir: the command's work directory is entered by the wrapper, so a missing one is
// told apart from the command's own failure, with nothing run.
func testExecWorkDir(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())
	for _, dir := range []string{"/no/such/dir", "/etc/hostname"} {
		var out bytes.Buffer
		started := false
		res, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"touch", "/tmp/ran"}, WorkDir: dir, Started: func() { started = true }},
			&out, &out, time.Minute, 0)
		if !errors.Is(err, runtimes.ErrWorkDirNotFound) || started || out.Len() > 0 {
			t.Errorf("WorkDir %s: %+v, %v, started %v, output %q", dir, res, err, started, out.String())
		}
	}
	if code, _ := e.Run(t, id, "ls", "/tmp/ran"); code == 0 {
		t.Error("the command ran although its work directory is missing")
	}
	var out SyncBuffer
	started := false
	if _, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"pwd"}, WorkDir: "/tmp", Started: func() { started = out.String() == "" }},
		&out, nil, time.Minute, 0); err != nil || out.String() != "/tmp\n" || !started {
		t.Errorf("pwd in /tmp: %q, %v, started before output %v", out.String(), err, started)
	}
}

// ExecOOMKilled: a command the kernel's OOM killer ends says so; one killed otherwise does not.
func testExecOOMKilled(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	spec := e.Spec()
	spec.MemoryMB = 32
	id := e.MustStart(rt, spec)
	res, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"}}, nil, nil, time.Minute, 0)
	if err != nil || res.ExitCode != 137 || !res.OOMKilled {
		t.Errorf("memory hog: %+v, %v; want 137 and OOMKilled", res, err)
	}
	// Right after an OOM kill the cgroup may still be at its limit for a moment, so that the
	// engine cannot start the next process (126): wait until one starts.
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err = rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"true"}}, nil, nil, time.Minute, 0)
		if (err == nil && res.ExitCode == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	res, err = rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh", "-c", "kill -9 $$"}}, nil, nil, time.Minute, 0)
	if err != nil || res.ExitCode != 137 || res.OOMKilled {
		t.Errorf("kill -9: %+v, %v; want 137 without OOMKilled", res, err)
	}
}

// NotRunningSaysWhy: an exec in a sandbox whose main process ended says how it ended.
func testNotRunningSaysWhy(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	exited := e.Spec()
	exited.Command = []string{"sh", "-c", "exit 3"}
	oom := e.Spec()
	oom.MemoryMB = 32
	oom.Command = []string{"sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a)"}
	var wg sync.WaitGroup
	for _, c := range []struct {
		spec runtimes.Spec
		want runtimes.NotRunningError
	}{
		{exited, runtimes.NotRunningError{State: runtimes.StateExited, ExitCode: 3}},
		{oom, runtimes.NotRunningError{State: runtimes.StateExited, ExitCode: 137, OOMKilled: true}},
	} {
		wg.Go(func() {
			id := e.MustStart(rt, c.spec)
			deadline := time.Now().Add(20 * time.Second)
			for {
				info, err := rt.Inspect(e.Ctx(), id)
				if err == nil && info.State == runtimes.StateExited || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			_, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"true"}}, nil, nil, time.Minute, 0)
			var got *runtimes.NotRunningError
			if !errors.As(err, &got) || *got != c.want || !errors.Is(err, runtimes.ErrNotRunning) {
				t.Errorf("%v: %v, want %+v", c.spec.Command, err, c.want)
			}
		})
	}
	wg.Wait()
}
