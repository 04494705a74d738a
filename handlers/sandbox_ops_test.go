package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

type execResult struct {
	ExitCode       int    `json:"exit_code"`
	Stdout         string `json:"stdout"`
	StdoutEncoding string `json:"stdout_encoding"`
	Stderr         string `json:"stderr"`
	StderrEncoding string `json:"stderr_encoding"`
	DurationMS     int64  `json:"duration_ms"`
	TimedOut       bool   `json:"timed_out"`
	Truncated      bool   `json:"truncated"`
}

func (u sandboxUser) exec(t testing.TB, sbID string, body any) execResult {
	t.Helper()
	raw, _ := json.Marshal(body)
	resp := u.do(t, "POST", "/api/sandboxes/"+sbID+"/exec", string(raw))
	if resp.Status != http.StatusOK {
		t.Fatalf("exec %s = %d %s", raw, resp.Status, resp.Body)
	}
	var res execResult
	mustJSON(t, resp.Body, &res)
	return res
}

// sh runs a shell script in the sandbox and returns its stdout.
func (u sandboxUser) sh(t testing.TB, sbID, script string) string {
	t.Helper()
	return u.exec(t, sbID, map[string]any{"cmd": []string{"sh", "-c", script}}).Stdout
}

// processes lists the command lines running in the sandbox.
func (u sandboxUser) processes(t testing.TB, sbID string) string {
	t.Helper()
	return u.sh(t, sbID, "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done")
}

// request sends a request with a raw body and the user's key, and reads the whole response.
func (u sandboxUser) request(t testing.TB, method, path string, body io.Reader, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u.id.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+u.key)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading: %v", method, path, err)
	}
	return resp, data
}

func filesURL(sbID, p string) string {
	return "/api/sandboxes/" + sbID + "/files?path=" + url.QueryEscape(p)
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data string
}

// events reads server-sent events from body until it ends, skipping comments.
func events(body io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 64)
	go func() {
		defer close(ch)
		r := bufio.NewReader(body)
		var ev sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if ev.name != "" || ev.data != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch
}

// stream starts a request that answers with server-sent events.
func (u sandboxUser) stream(t testing.TB, ctx context.Context, method, path, body string) (*http.Response, <-chan sseEvent) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, u.id.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+u.key)
	req.Header.Set("Accept", "text/event-stream")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %d %s %s", method, path, resp.StatusCode, resp.Header.Get("Content-Type"), data)
	}
	return resp, events(resp.Body)
}

func next(t testing.TB, ch <-chan sseEvent, within time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %s", within)
	}
	return sseEvent{}
}

func TestExec(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_exec")
	sb := u.create(t, `{}`)

	tests := []struct {
		name string
		body map[string]any
		want execResult
	}{
		{"exit code", map[string]any{"cmd": []string{"sh", "-c", "exit 3"}}, execResult{ExitCode: 3}},
		{"stdout and stderr apart", map[string]any{"cmd": []string{"sh", "-c", "echo out; echo err >&2"}},
			execResult{Stdout: "out\n", Stderr: "err\n"}},
		{"argv is not a shell string", map[string]any{"cmd": []string{"echo", "$HOME;", "*"}}, execResult{Stdout: "$HOME; *\n"}},
		{"env and cwd", map[string]any{"cmd": []string{"sh", "-c", "echo $GREETING; pwd"}, "env": map[string]string{"GREETING": "hi there"}, "cwd": "/tmp"},
			execResult{Stdout: "hi there\n/tmp\n"}},
		{"stdin", map[string]any{"cmd": []string{"sh", "-c", "tr a-z A-Z; echo done"}, "stdin": "piped\n"}, execResult{Stdout: "PIPED\ndone\n"}},
		{"no stdin is an empty stdin", map[string]any{"cmd": []string{"cat"}}, execResult{}},
		{"non-UTF-8 output is base64", map[string]any{"cmd": []string{"printf", `\377\376`}},
			execResult{Stdout: base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe}), StdoutEncoding: "base64"}},
		{"unknown program", map[string]any{"cmd": []string{"no-such-program"}}, execResult{ExitCode: 127, Stderr: "*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := u.exec(t, sb.ID, tt.body)
			if tt.want.StdoutEncoding == "" {
				tt.want.StdoutEncoding = "utf-8"
			}
			if got.ExitCode != tt.want.ExitCode || got.Stdout != tt.want.Stdout || got.StdoutEncoding != tt.want.StdoutEncoding ||
				(tt.want.Stderr == "*" && got.Stderr == "") || (tt.want.Stderr != "*" && got.Stderr != tt.want.Stderr) ||
				got.StderrEncoding != "utf-8" || got.TimedOut || got.Truncated {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestExecValidation(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Sandbox.ExecMaxTimeout = 10 * time.Minute })
	u := newSandboxUser(t, id, "user_exec_invalid")
	sb := u.create(t, `{}`)
	tests := []struct {
		name, body, field string
	}{
		{"no cmd", `{}`, "cmd"},
		{"empty cmd", `{"cmd":[]}`, "cmd"},
		{"empty program", `{"cmd":[""]}`, "cmd"},
		{"NUL in an argument", `{"cmd":["echo","a\u0000b"]}`, "cmd"},
		{"cmd as a string", `{"cmd":"echo hi"}`, "cmd"},
		{"env name not POSIX", `{"cmd":["true"],"env":{"1BAD":"x"}}`, "env"},
		{"relative cwd", `{"cmd":["true"],"cwd":"tmp"}`, "cwd"},
		{"timeout zero", `{"cmd":["true"],"timeout_seconds":0}`, "timeout_seconds"},
		{"timeout above exec_max_timeout", `{"cmd":["true"],"timeout_seconds":601}`, "timeout_seconds"},
		{"stdin not a string", `{"cmd":["cat"],"stdin":[1]}`, "stdin"},
		{"unknown field", `{"cmd":["true"],"shell":"bash"}`, "shell"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/exec", tt.body)
			var body struct {
				Error struct{ Code, Field string } `json:"error"`
			}
			mustJSON(t, resp.Body, &body)
			if resp.Status != http.StatusBadRequest || body.Error.Field != tt.field {
				t.Errorf("%d %s, want 400 naming %s", resp.Status, resp.Body, tt.field)
			}
		})
	}
}

// TestExecTimeoutKillsTheProcessTree: a command past its timeout is killed with everything it
// started, and reported as timed out.
func TestExecTimeoutKillsTheProcessTree(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_exec_timeout")
	sb := u.create(t, `{}`)
	start := time.Now()
	res := u.exec(t, sb.ID, map[string]any{"cmd": []string{"sh", "-c", "sleep 101 & sleep 102 & sleep 103; echo never"}, "timeout_seconds": 1})
	if !res.TimedOut || res.ExitCode != 137 || res.Stdout != "" || time.Since(start) > 6*time.Second || res.DurationMS < 1000 {
		t.Fatalf("after %v: %+v", time.Since(start), res)
	}
	if ps := u.processes(t, sb.ID); strings.Contains(ps, "sleep 10") {
		t.Fatalf("processes left after the timeout:\n%s", ps)
	}
}

// TestExecOutputIsCapped: output past sandbox.exec_output_limit is dropped, the command runs to
// its end, and the answer stays about the size of the limit.
func TestExecOutputIsCapped(t *testing.T) {
	const limit = 64 << 10
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Sandbox.ExecOutputLimit = limit })
	u := newSandboxUser(t, id, "user_exec_huge")
	sb := u.create(t, `{}`)
	resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/exec",
		`{"cmd":["sh","-c","head -c 50000000 /dev/zero | tr '\\0' x; echo finished >&2"]}`)
	var res execResult
	mustJSON(t, resp.Body, &res)
	if resp.Status != http.StatusOK || !res.Truncated || res.ExitCode != 0 || len(res.Stdout) != limit || strings.Trim(res.Stdout, "x") != "" {
		t.Fatalf("%d: exit %d truncated %v, %d bytes of stdout, stderr %q", resp.Status, res.ExitCode, res.Truncated, len(res.Stdout), res.Stderr)
	}
	if len(resp.Body) > limit+1024 {
		t.Errorf("answer of %d bytes for a limit of %d", len(resp.Body), limit)
	}
	t.Run("streaming is capped too", func(t *testing.T) {
		_, evs := u.stream(t, t.Context(), "POST", "/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["sh","-c","head -c 50000000 /dev/zero | tr '\\0' y"]}`)
		total := 0
		for ev := range evs {
			switch ev.name {
			case "stdout":
				var chunk struct{ Data, Encoding string }
				mustJSON(t, ev.data, &chunk)
				total += len(chunk.Data)
			case "exit":
				var end execResult
				mustJSON(t, ev.data, &end)
				if !end.Truncated || total != limit {
					t.Fatalf("streamed %d bytes, end %+v", total, end)
				}
				return
			default:
				t.Fatalf("unexpected event %+v", ev)
			}
		}
		t.Fatal("no exit event")
	})
}

func TestExecStreaming(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_exec_stream")
	sb := u.create(t, `{}`)

	t.Run("output arrives before the command ends", func(t *testing.T) {
		start := time.Now()
		_, evs := u.stream(t, t.Context(), "POST", "/api/sandboxes/"+sb.ID+"/exec",
			`{"cmd":["sh","-c","echo a; sleep 2; echo b >&2; printf '\\377'; exit 4"]}`)
		first := next(t, evs, 5*time.Second)
		if elapsed := time.Since(start); first.name != "stdout" || first.data != `{"data":"a\n","encoding":"utf-8"}` || elapsed > 1500*time.Millisecond {
			t.Fatalf("first event %+v after %v", first, elapsed)
		}
		var rest []sseEvent
		for ev := range evs {
			rest = append(rest, ev)
		}
		want := []sseEvent{
			{"stderr", `{"data":"b\n","encoding":"utf-8"}`},
			{"stdout", `{"data":"/w==","encoding":"base64"}`},
		}
		// stdout and stderr are separate pipes: their relative order is not kept.
		if len(rest) == 3 && rest[0].name == "stdout" {
			rest[0], rest[1] = rest[1], rest[0]
		}
		if len(rest) != 3 || fmt.Sprint(rest[:2]) != fmt.Sprint(want) || rest[2].name != "exit" {
			t.Fatalf("events %+v", rest)
		}
		var end execResult
		mustJSON(t, rest[2].data, &end)
		if end.ExitCode != 4 || end.TimedOut || end.Truncated || end.DurationMS < 2000 {
			t.Fatalf("exit %+v", end)
		}
	})

	t.Run("a client that leaves kills the command", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		u.stream(t, ctx, "POST", "/api/sandboxes/"+sb.ID+"/exec", `{"cmd":["sleep","300"],"timeout_seconds":600}`)
		eventually(t, "the command to run", 5*time.Second, func() bool { return strings.Contains(u.processes(t, sb.ID), "sleep 300") })
		if n := u.connections(t, sb.ID); n != 1 {
			t.Errorf("active_connections = %d while streaming, want 1", n)
		}
		cancel()
		eventually(t, "the command to be killed", 5*time.Second, func() bool { return !strings.Contains(u.processes(t, sb.ID), "sleep 300") })
		eventually(t, "the connection to end", 5*time.Second, func() bool { return u.connections(t, sb.ID) == 0 })
	})
}

func (u sandboxUser) connections(t testing.TB, sbID string) int {
	t.Helper()
	var got struct {
		ActiveConnections *int `json:"active_connections"`
	}
	mustJSON(t, u.do(t, "GET", "/api/sandboxes/"+sbID, "").Body, &got)
	if got.ActiveConnections == nil {
		t.Fatal("no active_connections")
	}
	return *got.ActiveConnections
}

type fileEntry struct {
	Name       string    `json:"name"`
	Path       string    `json:"path"`
	Size       int64     `json:"size"`
	Mode       string    `json:"mode"`
	Type       string    `json:"type"`
	IsDir      bool      `json:"is_dir"`
	ModifiedAt time.Time `json:"modified_at"`
}

func TestFiles(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_files")
	sb := u.create(t, `{}`)

	content := make([]byte, 1<<20)
	_, _ = rand.Read(content)
	resp, body := u.request(t, "PUT", filesURL(sb.ID, "/tmp/deep/dir/blob.bin")+"&mode=0600", bytes.NewReader(content), nil)
	if resp.StatusCode != http.StatusOK || string(body) != `{"mode":"0600","path":"/tmp/deep/dir/blob.bin","size":1048576}` {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	resp, body = u.request(t, "GET", filesURL(sb.ID, "/tmp/deep/dir/blob.bin"), nil, nil)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != 1<<20 || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		!bytes.Equal(body, content) {
		t.Fatalf("download: %d, Content-Length %d, %s, %d bytes, equal %v", resp.StatusCode, resp.ContentLength,
			resp.Header.Get("Content-Type"), len(body), bytes.Equal(body, content))
	}
	if got := u.sh(t, sb.ID, "stat -c '%a %s' /tmp/deep/dir/blob.bin"); got != "600 1048576\n" {
		t.Errorf("in the sandbox: %q", got)
	}

	t.Run("an upload without Content-Length is spooled", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write([]byte("streamed "))
			_, _ = pw.Write([]byte("content"))
			pw.Close()
		}()
		resp, body := u.request(t, "PUT", filesURL(sb.ID, "/tmp/streamed.txt"), pr, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"size":16`) {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if got := u.sh(t, sb.ID, "cat /tmp/streamed.txt"); got != "streamed content" {
			t.Fatalf("%q", got)
		}
	})

	t.Run("empty file", func(t *testing.T) {
		if resp, body := u.request(t, "PUT", filesURL(sb.ID, "/tmp/deep/empty"), strings.NewReader(""), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		resp, body := u.request(t, "GET", filesURL(sb.ID, "/tmp/deep/empty"), nil, nil)
		if resp.StatusCode != http.StatusOK || resp.ContentLength != 0 || len(body) != 0 {
			t.Fatalf("%d %d %q", resp.StatusCode, resp.ContentLength, body)
		}
	})

	t.Run("list", func(t *testing.T) {
		u.sh(t, sb.ID, "ln -s blob.bin /tmp/deep/dir/link; mkdir /tmp/deep/dir/sub")
		resp := u.do(t, "GET", "/api/sandboxes/"+sb.ID+"/files/list?path=/tmp/deep/dir", "")
		var list struct {
			Path    string      `json:"path"`
			Entries []fileEntry `json:"entries"`
		}
		mustJSON(t, resp.Body, &list)
		if resp.Status != http.StatusOK || list.Path != "/tmp/deep/dir" || len(list.Entries) != 3 {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
		want := []struct {
			name, typ, mode string
			isDir           bool
		}{{"blob.bin", "file", "0600", false}, {"link", "symlink", "0777", false}, {"sub", "dir", "0755", true}}
		for i, w := range want {
			e := list.Entries[i]
			if e.Name != w.name || e.Type != w.typ || e.Mode != w.mode || e.IsDir != w.isDir || e.Path != "/tmp/deep/dir/"+w.name ||
				time.Since(e.ModifiedAt) > time.Minute {
				t.Errorf("entry %d: %+v, want %+v", i, e, w)
			}
		}
		if list.Entries[0].Size != 1<<20 {
			t.Errorf("size %d", list.Entries[0].Size)
		}
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name, method, path string
			wantStatus         int
			wantCode           string
		}{
			{"missing file", "GET", filesURL(sb.ID, "/tmp/nope"), 404, "file_not_found"},
			{"missing directory", "GET", "/api/sandboxes/" + sb.ID + "/files/list?path=/nope", 404, "file_not_found"},
			{"remove a missing file", "DELETE", filesURL(sb.ID, "/tmp/nope"), 404, "file_not_found"},
			{"read a directory", "GET", filesURL(sb.ID, "/tmp/deep"), 409, "path_is_directory"},
			{"write over a directory", "PUT", filesURL(sb.ID, "/tmp/deep"), 409, "path_is_directory"},
			{"list a file", "GET", "/api/sandboxes/" + sb.ID + "/files/list?path=/tmp/deep/empty", 409, "path_not_directory"},
			{"remove a non-empty directory", "DELETE", filesURL(sb.ID, "/tmp/deep"), 409, "directory_not_empty"},
			{"bad mode", "PUT", filesURL(sb.ID, "/tmp/x") + "&mode=0999", 400, "validation_failed"},
			{"mode too wide", "PUT", filesURL(sb.ID, "/tmp/x") + "&mode=4755", 400, "validation_failed"},
			{"bad recursive", "DELETE", filesURL(sb.ID, "/tmp/deep") + "&recursive=maybe", 400, "validation_failed"},
			{"remove the root", "DELETE", filesURL(sb.ID, "/") + "&recursive=true", 400, "validation_failed"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				body := ""
				if tt.method == "PUT" {
					body = "x"
				}
				resp := u.do(t, tt.method, tt.path, body)
				if resp.Status != tt.wantStatus || errorCode(t, resp) != tt.wantCode {
					t.Errorf("%d %s, want %d %s", resp.Status, resp.Body, tt.wantStatus, tt.wantCode)
				}
			})
		}
	})

	t.Run("delete", func(t *testing.T) {
		if resp := u.do(t, "DELETE", filesURL(sb.ID, "/tmp/deep/dir/blob.bin"), ""); resp.Status != http.StatusNoContent {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
		if resp := u.do(t, "GET", filesURL(sb.ID, "/tmp/deep/dir/blob.bin"), ""); resp.Status != http.StatusNotFound {
			t.Fatalf("deleted file: %d", resp.Status)
		}
		if resp := u.do(t, "DELETE", filesURL(sb.ID, "/tmp/deep")+"&recursive=true", ""); resp.Status != http.StatusNoContent {
			t.Fatalf("recursive: %d %s", resp.Status, resp.Body)
		}
		if got := u.sh(t, sb.ID, "ls /tmp/deep 2>&1 || echo gone"); !strings.HasSuffix(got, "gone\n") {
			t.Fatalf("after a recursive delete: %q", got)
		}
	})
}

func TestFilePathValidation(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_files_paths")
	sb := u.create(t, `{}`)
	bad := []struct{ name, query string }{
		{"relative", "path=tmp/x"},
		{"dot dot", "path=.."},
		{"escape", "path=/a/../b"},
		{"leading escape", "path=/../etc/passwd"},
		{"dot element", "path=/tmp/./x"},
		{"trailing slash", "path=/tmp/"},
		{"double slash", "path=//etc/passwd"},
		{"NUL", "path=/tmp/a%00b"},
		{"empty", "path="},
		{"absent", ""},
	}
	routes := []struct{ method, route string }{
		{"PUT", "/files"}, {"GET", "/files"}, {"DELETE", "/files"}, {"GET", "/files/list"},
	}
	for _, b := range bad {
		for _, r := range routes {
			t.Run(b.name+" "+r.method+" "+r.route, func(t *testing.T) {
				body := ""
				if r.method == "PUT" {
					body = "x"
				}
				resp := u.do(t, r.method, "/api/sandboxes/"+sb.ID+r.route+"?"+b.query, body)
				var e struct {
					Error struct{ Code, Field string } `json:"error"`
				}
				mustJSON(t, resp.Body, &e)
				if resp.Status != http.StatusBadRequest || e.Error.Code != "validation_failed" || e.Error.Field != "path" {
					t.Errorf("%d %s", resp.Status, resp.Body)
				}
			})
		}
	}
	if got := u.sh(t, sb.ID, "ls /b /x /tmp/x 2>/dev/null; echo end"); got != "end\n" {
		t.Errorf("a refused upload wrote something: %q", got)
	}
}

// TestUploadLimit: uploads have their own limit, sandbox.max_upload_bytes, above the JSON body
// limit (http.max_body_bytes, 1 MiB here).
func TestUploadLimit(t *testing.T) {
	const limit = 3 << 20
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.Sandbox.MaxUploadBytes = limit })
	u := newSandboxUser(t, id, "user_files_limit")
	sb := u.create(t, `{}`)
	tests := []struct {
		name       string
		size       int
		chunked    bool
		wantStatus int
	}{
		{"at the limit", limit, false, http.StatusOK},
		{"over the limit", limit + 1, false, http.StatusRequestEntityTooLarge},
		{"over the limit without Content-Length", limit + 1, true, http.StatusRequestEntityTooLarge},
		{"at the limit without Content-Length", limit, true, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(make([]byte, tt.size))
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: the client sends chunks
			}
			resp, data := u.request(t, "PUT", filesURL(sb.ID, "/tmp/up"), body, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%d %s", resp.StatusCode, data)
			}
			if tt.wantStatus == http.StatusRequestEntityTooLarge {
				errorCode(t, testenv.Response{Status: resp.StatusCode, Body: string(data)})
			}
		})
	}
	if got := u.sh(t, sb.ID, "stat -c %s /tmp/up"); got != strconv.Itoa(limit)+"\n" {
		t.Errorf("a refused upload replaced the file: size %q", got)
	}
}

type logLine struct {
	Stream   string     `json:"stream"`
	Text     string     `json:"text"`
	Encoding string     `json:"encoding"`
	At       *time.Time `json:"at"`
}

func TestLogs(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_logs")
	sb := u.create(t, `{"command":["sh","-c","echo one; echo two >&2; sleep 0.5; echo three; sleep 600"]}`)
	logs := func(query string) []logLine {
		t.Helper()
		resp := u.do(t, "GET", "/api/sandboxes/"+sb.ID+"/logs"+query, "")
		if resp.Status != http.StatusOK {
			t.Fatalf("logs%s: %d %s", query, resp.Status, resp.Body)
		}
		var got struct{ Lines []logLine }
		mustJSON(t, resp.Body, &got)
		return got.Lines
	}
	text := func(lines []logLine) string {
		var parts []string
		for _, l := range lines {
			parts = append(parts, l.Stream+":"+l.Text)
		}
		return strings.Join(parts, ",")
	}
	eventually(t, "the three lines", 5*time.Second, func() bool { return len(logs("")) == 3 })
	// The engine reads stdout and stderr from separate pipes: only each stream's order is kept.
	// Kubernetes serves one interleaved log (GET /api/runtime: log_streams false) and labels every
	// line stdout: there the line written to stderr is told apart by its text.
	written := map[string]string{"one": "stdout", "two": "stderr", "three": "stdout"}
	streams := func(lines []logLine) string {
		var out, errs []string
		for _, l := range lines {
			stream := l.Stream
			if testenv.Driver() == "kubernetes" {
				if l.Stream != "stdout" {
					return "stream " + l.Stream + " from a runtime without log streams"
				}
				stream = written[l.Text]
			}
			if stream == "stdout" {
				out = append(out, l.Text)
			} else {
				errs = append(errs, "stderr:"+l.Text)
			}
		}
		return strings.Join(append(out, errs...), ",")
	}
	all := logs("")
	const want = "one,three,stderr:two"
	if streams(all) != want {
		t.Fatalf("lines %+v, want %s", all, want)
	}
	for _, l := range all {
		if l.At == nil || time.Since(*l.At) > time.Minute || l.Encoding != "utf-8" {
			t.Errorf("line %+v", l)
		}
	}
	tests := []struct{ query, want string }{
		{"?tail=1", "stdout:three"},
		{"?tail=0", ""},
		{"?since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), ""},
		{"?since=" + strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10), want},
	}
	for _, tt := range tests {
		got := text(logs(tt.query))
		if strings.HasPrefix(tt.query, "?since") {
			got = streams(logs(tt.query))
		}
		if got != tt.want {
			t.Errorf("logs%s = %q, want %q", tt.query, got, tt.want)
		}
	}
	for _, bad := range []struct{ query, field string }{{"?tail=-1", "tail"}, {"?tail=x", "tail"}, {"?since=yesterday", "since"}, {"?follow=maybe", "follow"}} {
		resp := u.do(t, "GET", "/api/sandboxes/"+sb.ID+"/logs"+bad.query, "")
		if resp.Status != http.StatusBadRequest || !strings.Contains(resp.Body, `"field":"`+bad.field+`"`) {
			t.Errorf("logs%s: %d %s", bad.query, resp.Status, resp.Body)
		}
	}

	t.Run("follow", func(t *testing.T) {
		ticker := u.create(t, `{"command":["sh","-c","i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]}`)
		_, evs := u.stream(t, t.Context(), "GET", "/api/sandboxes/"+ticker.ID+"/logs?follow=true&tail=0", "")
		var first logLine
		mustJSON(t, next(t, evs, 3*time.Second).data, &first)
		var later logLine
		mustJSON(t, next(t, evs, 3*time.Second).data, &later)
		if !strings.HasPrefix(first.Text, "tick ") || !strings.HasPrefix(later.Text, "tick ") || first.Text == later.Text {
			t.Fatalf("followed %+v then %+v", first, later)
		}
		if n := u.connections(t, ticker.ID); n != 1 {
			t.Errorf("active_connections = %d while following, want 1", n)
		}
		u.do(t, "DELETE", "/api/sandboxes/"+ticker.ID, "")
		deadline := time.After(15 * time.Second)
		for {
			select {
			case ev, ok := <-evs:
				if !ok {
					t.Fatal("the stream ended without an end event")
				}
				if ev.name == "end" {
					if n := u.connections(t, ticker.ID); n != 0 {
						t.Errorf("active_connections = %d after the stream, want 0", n)
					}
					resp := u.do(t, "GET", "/api/sandboxes/"+ticker.ID+"/logs", "")
					if resp.Status != http.StatusConflict || errorCode(t, resp) != "logs_unavailable" {
						t.Errorf("logs of a deleted sandbox: %d %s", resp.Status, resp.Body)
					}
					return
				}
			case <-deadline:
				t.Fatal("following did not end with the sandbox")
			}
		}
	})
}

func TestMetrics(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_metrics")
	sb := u.create(t, `{"memory_mb":64}`)
	resp := u.do(t, "GET", "/api/sandboxes/"+sb.ID+"/metrics", "")
	var m struct {
		CPUPercent       *float64  `json:"cpu_percent"`
		MemoryBytes      uint64    `json:"memory_bytes"`
		MemoryLimitBytes uint64    `json:"memory_limit_bytes"`
		Pids             uint64    `json:"pids"`
		At               time.Time `json:"at"`
	}
	mustJSON(t, resp.Body, &m)
	if resp.Status != http.StatusOK || m.CPUPercent == nil || *m.CPUPercent < 0 || m.MemoryLimitBytes != 64<<20 ||
		m.MemoryBytes == 0 || m.MemoryBytes > m.MemoryLimitBytes || m.Pids < 1 || time.Since(m.At) > time.Minute {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
	u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, "")
	if resp := u.do(t, "GET", "/api/sandboxes/"+sb.ID+"/metrics", ""); resp.Status != http.StatusConflict || errorCode(t, resp) != "sandbox_not_running" {
		t.Errorf("metrics of a stopped sandbox: %d %s", resp.Status, resp.Body)
	}
}

// terminal dials the terminal route with the user's key in X-API-Key.
func (u sandboxUser) terminal(t testing.TB, ctx context.Context, sbID, query string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	wsURL := "ws" + strings.TrimPrefix(u.id.URL, "http") + "/api/sandboxes/" + sbID + "/terminal" + query
	conn, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"X-API-Key": {u.key}}})
	if err == nil {
		t.Cleanup(func() { conn.CloseNow() })
	}
	return conn, resp, err
}

// readUntil reads terminal output until it contains want, returning all of it.
func readUntil(t testing.TB, ctx context.Context, conn *websocket.Conn, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out strings.Builder
	for !strings.Contains(out.String(), want) {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v; got %q", want, err, out.String())
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("a %v message from the server", typ)
		}
		out.Write(data)
	}
	return out.String()
}

func TestTerminal(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_terminal")
	sb := u.create(t, `{}`)
	ctx := t.Context()

	conn, _, err := u.terminal(t, ctx, sb.ID, "?rows=30&cols=90")
	if err != nil {
		t.Fatal(err)
	}
	type_ := func(s string) {
		t.Helper()
		if err := conn.Write(ctx, websocket.MessageBinary, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	// The quotes keep the echo of the typed line from matching.
	type_("echo hel''lo; stty size\n")
	readUntil(t, ctx, conn, "hello\r\n30 90")
	if n := u.connections(t, sb.ID); n != 1 {
		t.Errorf("active_connections = %d with a terminal open, want 1", n)
	}
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"resize","rows":40,"cols":100}`)); err != nil {
		t.Fatal(err)
	}
	type_("stty size\n")
	readUntil(t, ctx, conn, "40 100")
	type_("exit 3\n")
	_, _, err = conn.Read(ctx)
	for err == nil {
		_, _, err = conn.Read(ctx)
	}
	var closed websocket.CloseError
	if !errors.As(err, &closed) || closed.Code != websocket.StatusNormalClosure || closed.Reason != `{"exit_code":3}` {
		t.Fatalf("closed with %v", err)
	}
	eventually(t, "active_connections to fall to 0", 5*time.Second, func() bool { return u.connections(t, sb.ID) == 0 })

	t.Run("closing the socket kills the command", func(t *testing.T) {
		conn, _, err := u.terminal(t, ctx, sb.ID, "?"+url.Values{"cmd": {"sh", "-c", "echo started; sleep 321"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		readUntil(t, ctx, conn, "started")
		if !strings.Contains(u.processes(t, sb.ID), "sleep 321") {
			t.Fatal("the command does not run")
		}
		conn.Close(websocket.StatusNormalClosure, "bye")
		eventually(t, "the command to be killed", 5*time.Second, func() bool { return !strings.Contains(u.processes(t, sb.ID), "sleep 321") })
		eventually(t, "active_connections to fall to 0", 5*time.Second, func() bool { return u.connections(t, sb.ID) == 0 })
	})

	t.Run("a command that ends at once reports its exit code", func(t *testing.T) {
		conn, _, err := u.terminal(t, ctx, sb.ID, "?"+url.Values{"cmd": {"false"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		for err == nil {
			_, _, err = conn.Read(ctx)
		}
		var closed websocket.CloseError
		if !errors.As(err, &closed) || closed.Code != websocket.StatusNormalClosure || closed.Reason != `{"exit_code":1}` {
			t.Fatalf("closed with %v", err)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			name, query string
			headers     map[string]string
			wantStatus  int
		}{
			{"rows out of range", "?rows=0", nil, http.StatusBadRequest},
			{"cols not a number", "?cols=wide", nil, http.StatusBadRequest},
			{"empty program", "?cmd=", nil, http.StatusBadRequest},
			{"foreign browser origin", "", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wsURL := "ws" + strings.TrimPrefix(u.id.URL, "http") + "/api/sandboxes/" + sb.ID + "/terminal" + tt.query
				h := http.Header{"X-API-Key": {u.key}}
				for k, v := range tt.headers {
					h.Set(k, v)
				}
				_, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: h})
				if err == nil || resp == nil || resp.StatusCode != tt.wantStatus {
					t.Fatalf("dial: %v %v", err, resp)
				}
			})
		}
		if resp := u.do(t, "GET", "/api/sandboxes/"+sb.ID+"/terminal", ""); resp.Status != http.StatusUpgradeRequired || errorCode(t, resp) != "websocket_required" {
			t.Errorf("plain GET: %d %s", resp.Status, resp.Body)
		}
	})
}

// TestActivityExtendsExpiry: with auto_extend, a sandbox that is worked in outlives its timeout;
// an idle one expires.
func TestActivityExtendsExpiry(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_activity")
	// The busy one last: a create can take a second (a Pod), and it must not expire before its
	// first exec.
	idle := u.create(t, `{"timeout_seconds":5}`)
	noExtend := u.create(t, `{"timeout_seconds":5,"auto_extend":false}`)
	busy := u.create(t, `{"timeout_seconds":5}`)
	// Activity every second or two (an exec through a Pod's API server can take a while on a
	// loaded machine) for longer than the timeout.
	for range 7 {
		for _, sbID := range []string{busy.ID, noExtend.ID} {
			resp := u.do(t, "POST", "/api/sandboxes/"+sbID+"/exec", `{"cmd":["true"]}`)
			if sbID == busy.ID && resp.Status != http.StatusOK {
				t.Fatalf("exec in the busy sandbox: %d %s", resp.Status, resp.Body)
			}
		}
		time.Sleep(time.Second)
	}
	if got := u.get(t, busy.ID); got.Status != "running" || !got.ExpiresAt.After(busy.ExpiresAt.Add(5*time.Second)) {
		t.Errorf("busy sandbox: %s, expires %v (created expiring %v)", got.Status, got.ExpiresAt, busy.ExpiresAt)
	}
	eventually(t, "the idle sandboxes to expire", 5*time.Second, func() bool {
		return u.get(t, idle.ID).Status == "expired" && u.get(t, noExtend.ID).Status == "expired"
	})
}

// TestOpsOnPausedSandbox: what runs something in a sandbox needs it running, and says its state.
func TestOpsOnPausedSandbox(t *testing.T) {
	id := startIdentity(t, nil)
	u := newSandboxUser(t, id, "user_ops_paused")
	sb := u.create(t, `{}`)
	if resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/pause", ""); resp.Status != http.StatusOK {
		t.Fatal(resp.Body)
	}
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/exec", `{"cmd":["true"]}`},
		{"PUT", "/files?path=/tmp/x", "x"},
		{"GET", "/files?path=/tmp/x", ""},
		{"GET", "/files/list?path=/tmp", ""},
		{"DELETE", "/files?path=/tmp/x", ""},
	} {
		resp := u.do(t, req.method, "/api/sandboxes/"+sb.ID+req.path, req.body)
		if resp.Status != http.StatusConflict || errorCode(t, resp) != "sandbox_not_running" || !strings.Contains(resp.Body, "paused") {
			t.Errorf("%s %s: %d %s", req.method, req.path, resp.Status, resp.Body)
		}
	}
	_, resp, err := u.terminal(t, t.Context(), sb.ID, "")
	if err == nil || resp == nil || resp.StatusCode != http.StatusConflict {
		t.Fatalf("terminal on a paused sandbox: %v %v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "paused") {
		t.Errorf("terminal refusal: %s", body)
	}
	if resp := u.do(t, "GET", "/api/sandboxes/"+sb.ID+"/metrics", ""); resp.Status != http.StatusOK {
		t.Errorf("metrics of a paused sandbox: %d %s", resp.Status, resp.Body)
	}
	if resp := u.do(t, "GET", "/api/sandboxes/"+sb.ID+"/logs", ""); resp.Status != http.StatusOK {
		t.Errorf("logs of a paused sandbox: %d %s", resp.Status, resp.Body)
	}
}

// TestOpsTenancyAndScopes: someone else's sandbox is 404 on every route; a read-only key reads
// but cannot change anything.
func TestOpsTenancyAndScopes(t *testing.T) {
	id := startIdentity(t, nil)
	alice, bob := newSandboxUser(t, id, "user_alice_ops"), newSandboxUser(t, id, "user_bob_ops")
	sb := alice.create(t, `{}`)
	alice.request(t, "PUT", filesURL(sb.ID, "/tmp/f"), strings.NewReader("data"), nil)
	readOnly := sandboxUser{id: id, key: id.createKey(t, id.session(t, "user_alice_ops"), `{"name":"ro","scopes":["sandboxes:read"]}`).Key}
	base := "/api/sandboxes/" + sb.ID
	routes := []struct {
		method, path, body string
		write              bool
	}{
		{"POST", base + "/exec", `{"cmd":["true"]}`, true},
		{"PUT", base + "/files?path=/tmp/g", "data", true},
		{"DELETE", base + "/files?path=/tmp/f", "", true},
		{"GET", base + "/terminal", "", true},
		{"GET", base + "/files?path=/tmp/f", "", false},
		{"GET", base + "/files/list?path=/tmp", "", false},
		{"GET", base + "/logs", "", false},
		{"GET", base + "/metrics", "", false},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			if resp := bob.do(t, r.method, r.path, r.body); resp.Status != http.StatusNotFound || errorCode(t, resp) != "not_found" {
				t.Errorf("bob: %d %s", resp.Status, resp.Body)
			}
			resp := readOnly.do(t, r.method, r.path, r.body)
			switch {
			case r.write && (resp.Status != http.StatusForbidden || errorCode(t, resp) != "insufficient_scope"):
				t.Errorf("read-only key: %d %s, want 403", resp.Status, resp.Body)
			case !r.write && resp.Status != http.StatusOK:
				t.Errorf("read-only key: %d %s, want 200", resp.Status, resp.Body)
			}
		})
	}
	if got := alice.sh(t, sb.ID, "cat /tmp/f; ls /tmp/g 2>/dev/null"); got != "data" {
		t.Errorf("refused requests changed files: %q", got)
	}
}
