package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// Issue 8: what the orchestrator starts inside a sandbox is bounded and killed on every way out;
// user-caused conditions are 4xx that say what to do. Processes are checked through the engine
// directly, not through the API under test.

// enginePS maps pid to command line for every process in a sandbox's container.
func enginePS(t testing.TB, sbID string) map[string]string {
	t.Helper()
	return testenv.Processes(t, model.ContainerName(uuid.MustParse(sbID)))
}

// wantOnly waits (a SIGKILLed process still has to be reaped) until the sandbox runs only the
// processes of base.
func wantOnly(t testing.TB, sbID string, base map[string]string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var extra []string
		for pid, args := range enginePS(t, sbID) {
			if _, ok := base[pid]; !ok {
				extra = append(extra, pid+" "+args)
			}
		}
		if len(extra) == 0 {
			return
		}
		if time.Now().After(deadline) {
			slices.Sort(extra)
			t.Fatalf("processes left in the sandbox: %q", extra)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiError decodes the one error shape.
func apiError(t testing.TB, body string) (code, field, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Field, Message string } `json:"error"`
	}
	mustJSON(t, body, &e)
	return e.Error.Code, e.Error.Field, e.Error.Message
}

// TestSpecialFilesAreRefused: devices, FIFOs and sockets are refused with a 409 naming the
// path (reading /dev/zero used to leave `cat` running for good); kernel pseudo files are read,
// up to 1 MiB and without a Content-Length, since their size is only known once read.
func TestSpecialFilesAreRefused(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_special_files")
	sb := u.create(t, `{}`)
	base := enginePS(t, sb.ID)
	u.sh(t, sb.ID, "mkfifo /tmp/fifo")

	for _, p := range []string{"/dev/zero", "/dev/urandom", "/dev/null", "/tmp/fifo"} {
		resp := u.do(t, "GET", filesURL(sb.ID, p), "")
		code, field, msg := apiError(t, resp.Body)
		if resp.Status != http.StatusConflict || code != "not_regular_file" || field != "path" || !strings.Contains(msg, p) {
			t.Errorf("GET %s: %d %s", p, resp.Status, resp.Body)
		}
	}
	if resp := u.do(t, "PUT", filesURL(sb.ID, "/tmp/fifo"), "x"); resp.Status != http.StatusConflict || errorCode(t, resp) != "not_regular_file" {
		t.Errorf("PUT over a FIFO: %d %s", resp.Status, resp.Body)
	}
	for _, c := range []struct {
		path, want string
		size       int
	}{
		{"/proc/cpuinfo", "processor", 0},
		{"/proc/self/status", "Name:", 0},
		{"/proc/kallsyms", "", runtimes.PseudoFileLimit}, // several MB: cut at the limit
	} {
		resp, body := u.request(t, "GET", filesURL(sb.ID, c.path), nil, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(c.want)) || len(body) > runtimes.PseudoFileLimit ||
			(c.size > 0 && len(body) != c.size) {
			t.Errorf("GET %s: %d, %d bytes: %.100q", c.path, resp.StatusCode, len(body), body)
		}
		if c.size > 0 && resp.ContentLength != -1 {
			t.Errorf("GET %s: Content-Length %d for a file whose length is unknown until read", c.path, resp.ContentLength)
		}
	}
	wantOnly(t, sb.ID, base, 2*time.Second)
}

// TestFileRefusalsAre4xx: what the sandbox's filesystem refuses (read-only root, /proc, /sys, a
// full tmpfs) is a 4xx that says why, not a 500.
func TestFileRefusalsAre4xx(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Runtime.ReadOnlyRoot, c.Runtime.TmpfsSizeMB = true, 1
	})
	u := newSandboxUser(t, id, "user_fs_refusals")
	sb := u.create(t, `{}`)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"write on the read-only root", "PUT", "/etc/new", "x", http.StatusConflict, "read_only_filesystem"},
		{"write under /proc", "PUT", "/proc/new", "x", http.StatusForbidden, "permission_denied"},
		{"write under /sys", "PUT", "/sys/kernel/new", "x", http.StatusConflict, "read_only_filesystem"},
		{"write past the tmpfs size", "PUT", "/tmp/big", strings.Repeat("x", 2<<20), http.StatusConflict, "no_space_left"},
		{"delete under /proc", "DELETE", "/proc/cpuinfo", "", http.StatusForbidden, "permission_denied"},
		{"delete under /sys", "DELETE", "/sys/kernel/notes", "", http.StatusConflict, "read_only_filesystem"},
		{"delete on the read-only root", "DELETE", "/bin/sh", "", http.StatusConflict, "read_only_filesystem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := u.do(t, tt.method, filesURL(sb.ID, tt.path), tt.body)
			code, field, msg := apiError(t, resp.Body)
			if resp.Status != tt.status || code != tt.code || field != "path" || !strings.Contains(msg, tt.path) {
				t.Errorf("%d %s, want %d %s", resp.Status, resp.Body, tt.status, tt.code)
			}
		})
	}
}

// TestExecCwdAndEnvErrors: a cwd that does not exist is a 400 naming cwd, whether the answer is
// JSON or a stream (it used to run with exit 126 and the OCI runtime's raw text as stdout), and
// an oversized env is blamed on env.
func TestExecCwdAndEnvErrors(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_exec_cwd")
	sb := u.create(t, `{}`)
	path := "/api/sandboxes/" + sb.ID + "/exec"
	for _, cwd := range []string{"/no/such/dir", "/etc/hostname"} {
		body := `{"cmd":["touch","/tmp/ran"],"cwd":"` + cwd + `"}`
		resp := u.do(t, "POST", path, body)
		code, field, msg := apiError(t, resp.Body)
		if resp.Status != http.StatusBadRequest || code != "cwd_not_found" || field != "cwd" || !strings.Contains(msg, cwd) {
			t.Errorf("cwd %s: %d %s", cwd, resp.Status, resp.Body)
		}
		resp2, data := u.request(t, "POST", path, strings.NewReader(body), map[string]string{"Accept": "text/event-stream", "Content-Type": "application/json"})
		if code, field, _ := apiError(t, string(data)); resp2.StatusCode != http.StatusBadRequest || code != "cwd_not_found" || field != "cwd" {
			t.Errorf("cwd %s, streamed: %d %s", cwd, resp2.StatusCode, data)
		}
	}
	if got := u.sh(t, sb.ID, "ls /tmp/ran 2>/dev/null; echo end"); got != "end\n" {
		t.Errorf("the command ran without its cwd: %q", got)
	}
	big := strings.Repeat("x", 130<<10)
	resp := u.do(t, "POST", path, `{"cmd":["true"],"env":{"BIG":"`+big+`"}}`)
	if _, field, _ := apiError(t, resp.Body); resp.Status != http.StatusBadRequest || field != "env" {
		t.Errorf("oversized env: %d %.200s", resp.Status, resp.Body)
	}
	resp = u.do(t, "POST", path, `{"cmd":["echo","`+big+`"]}`)
	if _, field, _ := apiError(t, resp.Body); resp.Status != http.StatusBadRequest || field != "cmd" {
		t.Errorf("oversized cmd: %d %.200s", resp.Status, resp.Body)
	}
}

// TestExecOOMKilledIsReported: an exec the kernel's OOM killer ends says so, in JSON and in the
// stream's exit event; one killed otherwise does not.
func TestExecOOMKilledIsReported(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_exec_oom")
	sb := u.create(t, `{"memory_mb":32}`)
	// An exec is the OOM killer's first choice, the sandbox's own processes its last.
	if got := u.sh(t, sb.ID, "cat /proc/self/oom_score_adj /proc/1/oom_score_adj"); got != "1000\n0\n" {
		t.Errorf("oom_score_adj of an exec and of the sandbox's init: %q, want 1000 and 0", got)
	}
	hog := `{"cmd":["sh","-c","x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"]}`
	var res struct {
		execResult
		OOMKilled *bool `json:"oom_killed"`
	}
	resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/exec", hog)
	mustJSON(t, resp.Body, &res)
	if resp.Status != http.StatusOK || res.ExitCode != 137 || res.OOMKilled == nil || !*res.OOMKilled {
		t.Errorf("memory hog: %d %s", resp.Status, resp.Body)
	}
	resp = u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["sh","-c","kill -9 $$"]}`)
	mustJSON(t, resp.Body, &res)
	if resp.Status != http.StatusOK || res.ExitCode != 137 || res.OOMKilled == nil || *res.OOMKilled {
		t.Errorf("kill -9: %d %s", resp.Status, resp.Body)
	}
	_, evs := u.stream(t, t.Context(), "POST", "/api/sandboxes/"+sb.ID+"/exec", hog)
	for ev := range evs {
		if ev.name == "exit" {
			mustJSON(t, ev.data, &res)
			if res.ExitCode != 137 || res.OOMKilled == nil || !*res.OOMKilled {
				t.Errorf("streamed memory hog: exit event %s", ev.data)
			}
			return
		}
	}
	t.Error("no exit event")
}

// TestExecInAnEndedSandboxSaysWhy: when the sandbox's main process has exited, exec says so
// (it said "paused or stopped meanwhile").
func TestExecInAnEndedSandboxSaysWhy(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_exec_ended")
	sb := u.create(t, `{"command":["sh","-c","sleep 1; exit 3"]}`)
	time.Sleep(2 * time.Second)
	resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["true"]}`)
	code, _, msg := apiError(t, resp.Body)
	// Either the exec found the container ended, or the sandbox's status already follows it.
	told := strings.Contains(msg, "main process exited with status 3") || u.get(t, sb.ID).Status != "running"
	if resp.Status != http.StatusConflict || code != "sandbox_not_running" || strings.Contains(msg, "paused") || !told {
		t.Errorf("exec in a sandbox whose process exited: %d %s", resp.Status, resp.Body)
	}
}

// TestTerminalCommandThatEndsAtOnce: a terminal whose command ends at once reports its exit
// status (a command that cannot start reports 127), never a 500 — also when several open at once,
// which is when the engine refuses to resize a terminal whose process has just exited.
func TestTerminalCommandThatEndsAtOnce(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_terminal_quick")
	sb := u.create(t, `{}`)
	cases := []struct {
		cmd  []string
		want string
	}{{[]string{"true"}, `{"exit_code":0}`}, {[]string{"sh", "-c", "exit 7"}, `{"exit_code":7}`}, {[]string{"no-such-program"}, `{"exit_code":127}`}}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			for j := range 3 {
				c := cases[(i+j)%len(cases)]
				conn, resp, err := u.terminal(t, t.Context(), sb.ID, "?"+url.Values{"cmd": c.cmd}.Encode())
				if err != nil {
					body := ""
					if resp != nil {
						data, _ := io.ReadAll(resp.Body)
						body = string(data)
					}
					t.Errorf("%v: dial: %v %s", c.cmd, err, body)
					continue
				}
				for err == nil {
					_, _, err = conn.Read(t.Context())
				}
				var closed websocket.CloseError
				if !errors.As(err, &closed) || closed.Code != websocket.StatusNormalClosure || closed.Reason != c.want {
					t.Errorf("%v: closed with %v, want %s", c.cmd, err, c.want)
				}
			}
		})
	}
	wg.Wait()
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// execMemory runs one exec through the API, reading the answer into nothing, and returns the
// bytes allocated meanwhile and the peak of the live heap above where it started. The service
// runs in this process, so this is its memory (plus the test client's, which reads the answer in
// 32 KiB pieces).
func execMemory(t *testing.T, u sandboxUser, sbID, body string) (allocated, peak uint64) {
	t.Helper()
	base := heapInUse()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var top uint64
	wg.Go(func() {
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			top = max(top, m.HeapAlloc)
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	req, _ := http.NewRequest("POST", u.id.URL+"/api/sandboxes/"+sbID+"/exec", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+u.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	close(done)
	wg.Wait()
	if resp.StatusCode != http.StatusOK || err != nil || n < 10<<20 {
		t.Fatalf("exec: %d, %d bytes, %v", resp.StatusCode, n, err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, top - min(top, base)
}

// TestExecMemoryStaysNearTheOutputLimit: an exec printing without end holds its output (at most
// sandbox.exec_output_limit) plus a small constant: not a growing buffer, a string copy and a
// marshalled copy (`yes` took the service from 42 to 118 MB RSS with a 10 MiB limit).
func TestExecMemoryStaysNearTheOutputLimit(t *testing.T) {
	const limit = 10 << 20
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Sandbox.ExecOutputLimit = limit })
	u := newSandboxUser(t, id, "user_exec_memory")
	sb := u.create(t, `{"memory_mb":256}`)
	// "y\n" is the worst case for JSON: every other byte is escaped into two.
	body := `{"cmd":["sh","-c","yes | head -c 12000000"]}`
	execMemory(t, u, sb.ID, body) // warm-up: connection pools, first-use allocations
	allocated, peak := execMemory(t, u, sb.ID, body)
	t.Logf("one exec of 10 MiB of output: %.1f MiB allocated, live heap peak +%.1f MiB", float64(allocated)/(1<<20), float64(peak)/(1<<20))
	if allocated > limit+limit/2 || peak > limit+limit/2 {
		t.Errorf("an exec capped at %d MiB allocated %.1f MiB, peak +%.1f MiB; want at most 1.5x the cap",
			limit>>20, float64(allocated)/(1<<20), float64(peak)/(1<<20))
	}
}

// TestAbuseLeavesNothingBehind is the resource account of issue 8: after a battery of abusive
// requests, in a loop, no process the orchestrator started remains in the sandbox and the
// service's live heap is back within 20 MB of where it started. The battery runs while an SSE
// exec whose client stopped reading waits to be cut by the stream's write deadline (30 s): its
// command must be killed then (the kill used a deadline that had expired with the stream).
func TestAbuseLeavesNothingBehind(t *testing.T) {
	id := startIdentity(t, nil)
	// A replica whose request timeout cuts a long listing short.
	short := *id.cfg
	short.App.Instance = id.cfg.App.Instance + "-short"
	short.HTTP.RequestTimeout = 150 * time.Millisecond // listing 20 000 entries takes ~0.6 s here
	replica := startIdentityWith(t, &short, id.clerk, id.secret)
	u := newSandboxUser(t, id, "user_abuse")
	r := sandboxUser{id: replica, key: u.key}
	sb := u.create(t, `{"memory_mb":128}`)
	base := enginePS(t, sb.ID)
	u.sh(t, sb.ID, "head -c 20000000 /dev/zero > /tmp/big; mkdir /tmp/many && cd /tmp/many && seq 20000 | xargs touch")
	heapBefore := heapInUse()

	// A client that stops reading an endless stream: the server's writes block, and after the
	// stream's write deadline the stream is cut and the command must die with it.
	stalled := stalledStream(t, u, sb.ID, `{"cmd":["sh","-c","echo stalled-marker; exec yes"],"timeout_seconds":600}`)
	if !strings.Contains(fmt.Sprint(enginePS(t, sb.ID)), "stalled-marker") {
		t.Fatalf("the stalled command does not run: %q", enginePS(t, sb.ID))
	}

	abuse := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"read /dev/zero", func(t *testing.T) {
			if resp := u.do(t, "GET", filesURL(sb.ID, "/dev/zero"), ""); resp.Status != http.StatusConflict {
				t.Errorf("%d %s", resp.Status, resp.Body)
			}
		}},
		{"read /dev/urandom", func(t *testing.T) {
			if resp := u.do(t, "GET", filesURL(sb.ID, "/dev/urandom"), ""); resp.Status != http.StatusConflict {
				t.Errorf("%d %s", resp.Status, resp.Body)
			}
		}},
		{"read /proc/kallsyms", func(t *testing.T) {
			if resp, body := u.request(t, "GET", filesURL(sb.ID, "/proc/kallsyms"), nil, nil); resp.StatusCode != http.StatusOK || len(body) > runtimes.PseudoFileLimit {
				t.Errorf("%d, %d bytes", resp.StatusCode, len(body))
			}
		}},
		{"a download dropped early", func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", u.id.URL+filesURL(sb.ID, "/tmp/big"), nil)
			req.Header.Set("Authorization", "Bearer "+u.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.ReadFull(resp.Body, make([]byte, 4096))
			cancel()
			resp.Body.Close()
		}},
		{"a listing cut by the request timeout", func(t *testing.T) {
			resp := r.do(t, "GET", "/api/sandboxes/"+sb.ID+"/files/list?path=/tmp/many", "")
			if resp.Status != http.StatusServiceUnavailable {
				t.Errorf("%d %.200s", resp.Status, resp.Body)
			}
		}},
		{"an exec past its timeout", func(t *testing.T) {
			res := u.exec(t, sb.ID, map[string]any{"cmd": []string{"sh", "-c", "sleep 111 & yes >/dev/null"}, "timeout_seconds": 1})
			if !res.TimedOut || res.ExitCode != 137 {
				t.Errorf("%+v", res)
			}
		}},
		{"a streamed exec whose client leaves", func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			_, evs := u.stream(t, ctx, "POST", "/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["sh","-c","echo go; sleep 222"]}`)
			next(t, evs, 5*time.Second)
			cancel()
		}},
		{"a missing cwd", func(t *testing.T) {
			if resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["sleep","333"],"cwd":"/nope"}`); resp.Status != http.StatusBadRequest {
				t.Errorf("%d %s", resp.Status, resp.Body)
			}
		}},
		{"a terminal closed with a command running", func(t *testing.T) {
			conn, _, err := u.terminal(t, t.Context(), sb.ID, "?"+url.Values{"cmd": {"sh", "-c", "echo up; sleep 444"}}.Encode())
			if err != nil {
				t.Fatal(err)
			}
			readUntil(t, t.Context(), conn, "up")
			conn.Close(websocket.StatusNormalClosure, "bye")
		}},
		{"writes and deletes the kernel refuses", func(t *testing.T) {
			if resp := u.do(t, "PUT", filesURL(sb.ID, "/proc/x"), "x"); resp.Status != http.StatusForbidden {
				t.Errorf("PUT /proc/x: %d %s", resp.Status, resp.Body)
			}
			if resp := u.do(t, "DELETE", filesURL(sb.ID, "/proc/cpuinfo"), ""); resp.Status != http.StatusForbidden {
				t.Errorf("DELETE /proc/cpuinfo: %d %s", resp.Status, resp.Body)
			}
		}},
	}
	for round := range 3 {
		for _, a := range abuse {
			t.Run(fmt.Sprintf("%d %s", round, a.name), a.run)
		}
	}

	<-stalled // the server has cut the stream: its command must be gone with it
	wantOnly(t, sb.ID, base, 3*time.Second)
	if after := heapInUse(); after > heapBefore+20<<20 {
		t.Errorf("live heap %d MB after the battery, %d MB before", after>>20, heapBefore>>20)
	}
}

// stalledStream starts an SSE exec, reads its first event and then stops reading without closing
// the connection. The returned channel closes once the server has cut the stream.
func stalledStream(t *testing.T, u sandboxUser, sbID, body string) <-chan struct{} {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", u.id.URL+"/api/sandboxes/"+sbID+"/exec", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+u.key)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Content-Type", "application/json")
	// A transport of its own: nothing else may use (or drain) this connection.
	tr := &http.Transport{ReadBufferSize: 4096}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v %v", err, resp)
	}
	t.Cleanup(func() { resp.Body.Close() })
	buf := make([]byte, 64)
	if _, err := io.ReadAtLeast(resp.Body, buf, 1); err != nil {
		t.Fatal(err)
	}
	cut := make(chan struct{})
	go func() {
		defer close(cut)
		// Not reading: the server's writes fill the socket buffers and block until its write
		// deadline cuts the stream; only then is the rest drained, to learn the cut happened.
		time.Sleep(35 * time.Second)
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	return cut
}

// TestShutdownKillsWhatStreamsRun: when the service shuts down, the command of an open stream is
// killed before shutdown returns, so none outlives the orchestrator that started it. (Terminals
// are hijacked connections that shutdown does not wait for; see middleware.Streams.)
func TestShutdownKillsWhatStreamsRun(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.HTTP.ShutdownTimeout = 4 * time.Second })
	u := newSandboxUser(t, id, "user_shutdown_kills")
	sb := u.create(t, `{}`)
	base := enginePS(t, sb.ID)
	ctx := t.Context()
	_, evs := u.stream(t, ctx, "POST", "/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["sh","-c","echo go; sleep 322"],"timeout_seconds":600}`)
	next(t, evs, 5*time.Second)
	term, _, err := u.terminal(t, ctx, sb.ID, "?cmd=sleep&cmd=323")
	if err != nil {
		t.Fatal(err)
	}
	defer term.CloseNow()
	testenv.Eventually(t, "both commands to run", 10*time.Second, func() bool {
		ps := fmt.Sprint(enginePS(t, sb.ID))
		return strings.Contains(ps, "sleep 322") && strings.Contains(ps, "sleep 323")
	})
	// Stop returns only once every stream's handler has returned, the terminal's included (it
	// hijacked its connection, so http.Server.Shutdown does not wait for it).
	id.Stop(t)
	wantOnly(t, sb.ID, base, 0)
}
