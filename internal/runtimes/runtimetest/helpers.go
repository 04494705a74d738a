package runtimetest

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/shell"
)

// strangers lists the processes in the sandbox that were not in base (pid → command line),
// leaving out the ps that lists them.
func strangers(t *testing.T, e *Env, id string, base map[string]string) []string {
	t.Helper()
	var out []string
	for pid, args := range processes(t, e, id) {
		if _, ok := base[pid]; !ok && !strings.HasPrefix(args, "ps ") {
			out = append(out, pid+" "+args)
		}
	}
	slices.Sort(out)
	return out
}

// processes maps pid to command line for every process in the sandbox.
func processes(t *testing.T, e *Env, id string) map[string]string {
	t.Helper()
	_, ps := e.Run(t, id, "ps", "-o", "pid,args")
	procs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(ps), "\n")[1:] {
		pid, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		procs[pid] = strings.TrimSpace(args)
	}
	return procs
}

// wantNoStrangers fails unless, within the given time, only the processes of base run in the
// sandbox. After a call that ended its processes itself, a second is enough (a SIGKILLed process
// still has to be reaped).
func wantNoStrangers(t *testing.T, e *Env, id string, base map[string]string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		left := strangers(t, e, id, base)
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

// HelpersLeaveNothingRunning: whatever way a helper ends — refused, read to the end, closed
// early, its context ended, its reader gone, its cleanup starting long after its start — no
// process of it is left in the sandbox.
func testHelpersLeaveNothingRunning(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())
	base := processes(t, e, id)
	if code, out := e.Run(t, id, "sh", "-c", "head -c 20000000 /dev/zero > /tmp/big && mkfifo /tmp/fifo && "+
		"mkdir /tmp/many && cd /tmp/many && seq 20000 | xargs touch"); code != 0 {
		t.Fatalf("setup: %d %s", code, out)
	}

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"special files are refused, not read", func(t *testing.T) {
			for _, p := range []string{"/dev/zero", "/dev/urandom", "/dev/null", "/tmp/fifo"} {
				if _, _, err := rt.ReadFile(e.Ctx(), id, p); !errors.Is(err, runtimes.ErrNotRegular) {
					t.Errorf("ReadFile %s: %v, want ErrNotRegular", p, err)
				}
			}
			if err := rt.WriteFile(e.Ctx(), id, "/tmp/fifo", 0, strings.NewReader("x"), 1); !errors.Is(err, runtimes.ErrNotRegular) {
				t.Errorf("WriteFile over a FIFO: %v, want ErrNotRegular", err)
			}
		}},
		{"a read closed early", func(t *testing.T) {
			rc, info, err := rt.ReadFile(e.Ctx(), id, "/tmp/big")
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
			ctx, cancel := context.WithCancel(e.Ctx())
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
			ctx, cancel := context.WithCancel(e.Ctx())
			rc, _, err := rt.ReadFile(ctx, id, "/tmp/big")
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			cancel() // the caller is blocked elsewhere: no Read, no Close yet
			// Nothing waits for the kill, which runs in the background: it takes the grace a
			// helper gets to end by itself and a few calls to the runtime (an exec through the
			// Kubernetes API server takes a good part of a second on a loaded node).
			wantNoStrangers(t, e, id, base, 5*time.Second)
		}},
		{"a listing whose context ends", func(t *testing.T) {
			// 30 ms: less than an exec takes to start on either engine, let alone list 20 000
			// entries (150 ms was once not enough to outlast a listing on an idle machine).
			ctx, cancel := context.WithTimeout(e.Ctx(), 30*time.Millisecond)
			defer cancel()
			if _, err := rt.ListDir(ctx, id, "/tmp/many"); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("ListDir: %v, want the context's deadline (the listing must take longer than it)", err)
			}
		}},
		{"an exec whose reader is gone", func(t *testing.T) {
			start := time.Now()
			_, err := rt.Exec(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"yes"}}, failingWriter{}, nil, time.Minute, 0)
			if !errors.Is(err, errReaderGone) || time.Since(start) > 5*time.Second {
				t.Errorf("Exec after %v: %v, want the writer's error at once", time.Since(start), err)
			}
		}},
		{"an exec stopped long after it started", func(t *testing.T) {
			// The kill's deadline counts from the kill, not from the start: a command cut off
			// after running longer than the whole cleanup budget is still killed.
			defer shell.SetCleanupTimeout(time.Second)()
			ctx, cancel := context.WithCancel(e.Ctx())
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
						term, err := rt.Terminal(e.Ctx(), id, runtimes.ExecSpec{Cmd: []string{"true"}}, 24, 80)
						if err != nil {
							t.Errorf("Terminal: %v", err)
							continue
						}
						_, _ = io.Copy(io.Discard, term)
						if code, err := term.Wait(e.Ctx()); code != 0 || err != nil {
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
			wantNoStrangers(t, e, id, base, time.Second)
		})
	}
}

// CgroupLimitsScript prints a sandbox's memory limit in bytes and its CPU quota and period in
// microseconds ("memory=N" and "cpu=Q P" lines), read from its cgroup whether the host runs
// cgroup v2 or v1: what the kernel enforces, not what the runtime reports.
const CgroupLimitsScript = `echo "memory=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
echo "cpu=$(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us))"`
