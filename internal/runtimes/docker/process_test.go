package docker_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/docker"
	"github.com/insien/orchestrator/internal/runtimes/shell"
)

// strangers lists the processes in the container that were not in base (pid → command line),
// leaving out the ps that lists them.
func strangers(t *testing.T, h *harness, id string, base map[string]string) []string {
	t.Helper()
	var out []string
	for pid, args := range processes(t, h, id) {
		if _, ok := base[pid]; !ok && !strings.HasPrefix(args, "ps ") {
			out = append(out, pid+" "+args)
		}
	}
	slices.Sort(out)
	return out
}

// processes maps pid to command line for every process in the container.
func processes(t *testing.T, h *harness, id string) map[string]string {
	t.Helper()
	_, ps := h.exec(t, id, "ps", "-o", "pid,args")
	procs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(ps), "\n")[1:] {
		pid, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		procs[pid] = strings.TrimSpace(args)
	}
	return procs
}

// wantNoStrangers fails unless, within a second (a SIGKILLed process still has to be reaped),
// only the processes of base run in the container.
func wantNoStrangers(t *testing.T, h *harness, id string, base map[string]string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		left := strangers(t, h, id, base)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes left in the sandbox: %q", left)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failingWriter fails every write, as a response writer whose client stopped reading does once
// its deadline passes.
type failingWriter struct{}

var errReaderGone = errors.New("the reader is gone")

func (failingWriter) Write([]byte) (int, error) { return 0, errReaderGone }

// TestHelpersLeaveNothingRunning: whatever way a helper ends — refused, read to the end, closed
// early, its context ended, its reader gone, its cleanup starting long after its start — no
// process of it is left in the sandbox.
func TestHelpersLeaveNothingRunning(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	id := h.mustStart(rt, h.spec())
	base := processes(t, h, id)
	if code, out := h.exec(t, id, "sh", "-c", "head -c 20000000 /dev/zero > /tmp/big && mkfifo /tmp/fifo && "+
		"mkdir /tmp/many && cd /tmp/many && seq 20000 | xargs touch"); code != 0 {
		t.Fatalf("setup: %d %s", code, out)
	}

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"special files are refused, not read", func(t *testing.T) {
			for _, p := range []string{"/dev/zero", "/dev/urandom", "/dev/null", "/tmp/fifo"} {
				if _, _, err := rt.ReadFile(h.ctx(), id, p); !errors.Is(err, runtimes.ErrNotRegular) {
					t.Errorf("ReadFile %s: %v, want ErrNotRegular", p, err)
				}
			}
			if err := rt.WriteFile(h.ctx(), id, "/tmp/fifo", 0, strings.NewReader("x"), 1); !errors.Is(err, runtimes.ErrNotRegular) {
				t.Errorf("WriteFile over a FIFO: %v, want ErrNotRegular", err)
			}
		}},
		{"a read closed early", func(t *testing.T) {
			rc, info, err := rt.ReadFile(h.ctx(), id, "/tmp/big")
			if err != nil || info.Size != 20000000 {
				t.Fatalf("ReadFile: %v %+v", err, info)
			}
			if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			rc.Close()
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("Close took %v", took)
			}
		}},
		{"a read whose context ends", func(t *testing.T) {
			ctx, cancel := context.WithCancel(h.ctx())
			rc, _, err := rt.ReadFile(ctx, id, "/tmp/big")
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			cancel()
			if _, err := io.Copy(io.Discard, rc); err == nil {
				t.Error("a read whose context ended read to the end")
			}
			rc.Close()
		}},
		{"a read whose context ends while nobody reads it", func(t *testing.T) {
			ctx, cancel := context.WithCancel(h.ctx())
			rc, _, err := rt.ReadFile(ctx, id, "/tmp/big")
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			cancel() // the caller is blocked elsewhere: no Read, no Close yet
			wantNoStrangers(t, h, id, base)
		}},
		{"a listing whose context ends", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(h.ctx(), 150*time.Millisecond)
			defer cancel()
			if _, err := rt.ListDir(ctx, id, "/tmp/many"); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("ListDir: %v, want the context's deadline (the listing must take longer than it)", err)
			}
		}},
		{"an exec whose reader is gone", func(t *testing.T) {
			start := time.Now()
			_, err := rt.Exec(h.ctx(), id, runtimes.ExecSpec{Cmd: []string{"yes"}}, failingWriter{}, nil, time.Minute, 0)
			if !errors.Is(err, errReaderGone) || time.Since(start) > 5*time.Second {
				t.Errorf("Exec after %v: %v, want the writer's error at once", time.Since(start), err)
			}
		}},
		{"an exec stopped long after it started", func(t *testing.T) {
			// The kill's deadline counts from the kill, not from the start: a command cut off
			// after running longer than the whole cleanup budget is still killed.
			defer shell.SetCleanupTimeout(time.Second)()
			ctx, cancel := context.WithCancel(h.ctx())
			time.AfterFunc(2500*time.Millisecond, cancel)
			_, err := rt.Exec(ctx, id, runtimes.ExecSpec{Cmd: []string{"sh", "-c", "sleep 301 & sleep 302"}}, nil, nil, time.Minute, 0)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Exec: %v, want context.Canceled", err)
			}
		}},
		{"terminals whose command ends at once", func(t *testing.T) {
			// Several at once: the engine then refuses to resize a terminal whose process has
			// just exited, which must not fail the session.
			var wg sync.WaitGroup
			for range 6 {
				wg.Go(func() {
					for range 5 {
						term, err := rt.Terminal(h.ctx(), id, runtimes.ExecSpec{Cmd: []string{"true"}}, 24, 80)
						if err != nil {
							t.Errorf("Terminal: %v", err)
							continue
						}
						_, _ = io.Copy(io.Discard, term)
						if code, err := term.Wait(h.ctx()); code != 0 || err != nil {
							t.Errorf("Wait = %d, %v", code, err)
						}
						term.Close()
					}
				})
			}
			wg.Wait()
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t)
			wantNoStrangers(t, h, id, base)
		})
	}
}

// TestReadFileBounds: a regular file is read up to the size it had when opened; a kernel pseudo
// file, which reports no size, up to PseudoFileLimit.
func TestReadFileBounds(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	id := h.mustStart(rt, h.spec())
	base := processes(t, h, id)

	t.Run("a growing file", func(t *testing.T) {
		h.exec(t, id, "sh", "-c", "(while :; do echo growing; done > /tmp/grow) >/dev/null 2>&1 & echo $! > /tmp/grow.pid; sleep 0.2")
		defer h.exec(t, id, "sh", "-c", "kill $(cat /tmp/grow.pid)")
		rc, info, err := rt.ReadFile(h.ctx(), id, "/tmp/grow")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil || int64(len(data)) != info.Size || info.Size <= 0 {
			t.Errorf("read %d bytes (%v) of a file of %d when opened", len(data), err, info.Size)
		}
	})
	t.Run("pseudo files", func(t *testing.T) {
		for _, c := range []struct {
			path string
			want string
		}{{"/proc/cpuinfo", "processor"}, {"/proc/self/status", "Name:"}, {"/sys/kernel/mm/transparent_hugepage/enabled", "]"}} {
			data, info := readAll(t, h, rt, id, c.path)
			if info.Size != -1 || !bytes.Contains(data, []byte(c.want)) || len(data) > runtimes.PseudoFileLimit {
				t.Errorf("%s: size %d, %d bytes: %.80q", c.path, info.Size, len(data), data)
			}
		}
		// Several MB in the kernel's symbol table: cut at the limit.
		if data, _ := readAll(t, h, rt, id, "/proc/kallsyms"); len(data) != runtimes.PseudoFileLimit {
			t.Errorf("/proc/kallsyms: %d bytes, want the limit, %d", len(data), runtimes.PseudoFileLimit)
		}
	})
	h.exec(t, id, "sh", "-c", "kill $(cat /tmp/grow.pid) 2>/dev/null; sleep 0.1")
	wantNoStrangers(t, h, id, base)
}

// TestFilesystemRefusals: what the sandbox's kernel refuses is told apart, not a bare failure.
func TestFilesystemRefusals(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{ReadOnlyRoot: true, TmpfsSizeMB: 1})
	id := h.mustStart(rt, h.spec())
	write := func(p string, size int) error {
		return rt.WriteFile(h.ctx(), id, p, 0, bytes.NewReader(make([]byte, size)), int64(size))
	}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"write on the read-only root", write("/etc/new", 1), runtimes.ErrReadOnly},
		{"write into a new directory on the read-only root", write("/opt/a/b", 1), runtimes.ErrReadOnly},
		{"write under /proc", write("/proc/new", 1), runtimes.ErrPermission},
		{"write under /sys", write("/sys/kernel/new", 1), runtimes.ErrReadOnly},
		{"write past the tmpfs size", write("/tmp/big", 2<<20), runtimes.ErrNoSpace},
		{"remove under /proc", rt.RemoveFile(h.ctx(), id, "/proc/cpuinfo", false), runtimes.ErrPermission},
		{"remove under /sys", rt.RemoveFile(h.ctx(), id, "/sys/kernel/notes", false), runtimes.ErrReadOnly},
		{"remove on the read-only root", rt.RemoveFile(h.ctx(), id, "/bin/sh", false), runtimes.ErrReadOnly},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	if _, out := h.exec(t, id, "ls", "-A", "/tmp"); strings.TrimSpace(out) != "" {
		t.Errorf("a refused write left %q in /tmp", out)
	}
}

// TestListDirLarge: listing is linear in the number of entries (the old script took over 30 s
// for 20k), and a directory past MaxListEntries is refused by name.
func TestListDirLarge(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	id := h.mustStart(rt, h.spec())
	if code, out := h.exec(t, id, "sh", "-c", "mkdir /tmp/many && cd /tmp/many && seq 20000 | xargs touch && touch .hidden ..dots"); code != 0 {
		t.Fatalf("setup: %d %s", code, out)
	}
	start := time.Now()
	infos, err := rt.ListDir(h.ctx(), id, "/tmp/many")
	took := time.Since(start)
	if err != nil || len(infos) != 20002 {
		t.Fatalf("ListDir: %d entries, %v", len(infos), err)
	}
	if took > 5*time.Second {
		t.Errorf("listing 20k entries took %v", took)
	}
	t.Logf("listed %d entries in %v", len(infos), took)
}

// TestExecWorkDir: the command's work directory is entered by the wrapper, so a missing one is
// told apart from the command's own failure, with nothing run.
func TestExecWorkDir(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	id := h.mustStart(rt, h.spec())
	for _, dir := range []string{"/no/such/dir", "/etc/hostname"} {
		var out bytes.Buffer
		started := false
		res, err := rt.Exec(h.ctx(), id, runtimes.ExecSpec{Cmd: []string{"touch", "/tmp/ran"}, WorkDir: dir, Started: func() { started = true }},
			&out, &out, time.Minute, 0)
		if !errors.Is(err, runtimes.ErrWorkDirNotFound) || started || out.Len() > 0 {
			t.Errorf("WorkDir %s: %+v, %v, started %v, output %q", dir, res, err, started, out.String())
		}
	}
	if code, _ := h.exec(t, id, "ls", "/tmp/ran"); code == 0 {
		t.Error("the command ran although its work directory is missing")
	}
	var out syncBuffer
	started := false
	if _, err := rt.Exec(h.ctx(), id, runtimes.ExecSpec{Cmd: []string{"pwd"}, WorkDir: "/tmp", Started: func() { started = out.String() == "" }},
		&out, nil, time.Minute, 0); err != nil || out.String() != "/tmp\n" || !started {
		t.Errorf("pwd in /tmp: %q, %v, started before output %v", out.String(), err, started)
	}
}

// TestExecOOMKilled: a command the kernel's OOM killer ends says so; one killed otherwise does not.
func TestExecOOMKilled(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	spec := h.spec()
	spec.MemoryMB = 32
	id := h.mustStart(rt, spec)
	res, err := rt.Exec(h.ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"}}, nil, nil, time.Minute, 0)
	if err != nil || res.ExitCode != 137 || !res.OOMKilled {
		t.Errorf("memory hog: %+v, %v; want 137 and OOMKilled", res, err)
	}
	res, err = rt.Exec(h.ctx(), id, runtimes.ExecSpec{Cmd: []string{"sh", "-c", "kill -9 $$"}}, nil, nil, time.Minute, 0)
	if err != nil || res.ExitCode != 137 || res.OOMKilled {
		t.Errorf("kill -9: %+v, %v; want 137 without OOMKilled", res, err)
	}
}

// TestNotRunningSaysWhy: an exec in a sandbox whose main process ended says how it ended.
func TestNotRunningSaysWhy(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	exited := h.spec()
	exited.Command = []string{"sh", "-c", "exit 3"}
	oom := h.spec()
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
			id := h.mustStart(rt, c.spec)
			deadline := time.Now().Add(20 * time.Second)
			for {
				info, err := rt.Inspect(h.ctx(), id)
				if err == nil && info.State == runtimes.StateExited || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			_, err := rt.Exec(h.ctx(), id, runtimes.ExecSpec{Cmd: []string{"true"}}, nil, nil, time.Minute, 0)
			var got *runtimes.NotRunningError
			if !errors.As(err, &got) || *got != c.want || !errors.Is(err, runtimes.ErrNotRunning) {
				t.Errorf("%v: %v, want %+v", c.spec.Command, err, c.want)
			}
		})
	}
	wg.Wait()
}
