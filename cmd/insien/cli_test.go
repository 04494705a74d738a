package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/sdk/go/client"
)

// TestCLI is the CLI's documentation, run: the whole service (Postgres, Redis, Docker sandboxes,
// a Clerk stub) on a loopback port and insien driven as a person or a script would, in process
// (run with its own streams) and, for the terminal, as a built binary on a real pseudo-terminal.
// The subtests share one service and come in the order a newcomer meets the commands.
func TestCLI(t *testing.T) {
	svc := testenv.StartService(t, nil)
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config) // os.UserConfigDir on Linux
	// every subtest but login's reaches the service through the environment, so each runs alone too
	t.Setenv("INSIEN_API_KEY", svc.APIKey)
	t.Setenv("INSIEN_API_URL", svc.URL)
	e := &env{t: t, svc: svc, config: filepath.Join(config, "insien", "config.json")}

	t.Run("login", e.testLogin)
	t.Run("usage errors", e.testUsage)
	t.Run("sandbox", e.testSandbox)
	t.Run("api errors", e.testAPIErrors)
	t.Run("exec", e.testExec)
	t.Run("cp", e.testCp)
	t.Run("logs", e.testLogs)
	t.Run("keys", e.testKeys)
	t.Run("completion", e.testCompletion)
	t.Run("shell on a pty", e.testShell)
}

// env is what the subtests share.
type env struct {
	t      *testing.T
	svc    *testenv.Service
	config string // where login stores the key

	buildOnce sync.Once // the binary, for what needs a process of its own
	bin       string
	buildErr  error
}

// result is one run of insien.
type result struct {
	code           int
	stdout, stderr string
}

// insien runs the CLI in process with stdin and args.
func insien(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// ok runs insien and fails the test unless it exits 0.
func ok(t *testing.T, args ...string) result {
	t.Helper()
	r := insien(t, "", args...)
	if r.code != 0 {
		t.Fatalf("insien %s = exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// sdk is a Go SDK client as the service's user, for checking what the CLI did.
func (e *env) sdk(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(e.svc.APIKey, client.WithBaseURL(e.svc.URL))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sandbox creates a sandbox through the CLI and removes it when the test ends.
func (e *env) sandbox(t *testing.T, args ...string) string {
	t.Helper()
	r := ok(t, append([]string{"sandbox", "create", "-q"}, args...)...)
	id := strings.TrimSpace(r.stdout)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.sdk(t).Sandboxes.Connect(id).Delete(ctx); err != nil {
			t.Errorf("removing sandbox %s: %v", id, err)
		}
	})
	return id
}

// requestID matches how an API error names its request.
var requestID = regexp.MustCompile(`request id [0-9A-Za-z-]{8,}`)

func (e *env) testLogin(t *testing.T) {
	t.Setenv("INSIEN_API_KEY", "")
	t.Setenv("INSIEN_API_URL", "")
	bad := "isk_" + strings.Repeat("A", 49)
	steps := []struct {
		name      string
		stdin     string
		args      []string
		env       map[string]string
		code      int
		stderr    string // a substring
		storedKey string // the key the file holds afterwards ("" : no file)
	}{
		{name: "a refused key is not stored", args: []string{"login", "--api-key", bad, "--api-url", e.svc.URL},
			code: 1, stderr: "invalid_api_key"},
		{name: "an empty stdin is a usage error", args: []string{"login"}, code: 2, stderr: "no API key given"},
		{name: "the key from stdin, the endpoint from a flag", stdin: e.svc.APIKey + "\n", args: []string{"login", "--api-url", e.svc.URL},
			stderr: "Logged in", storedKey: e.svc.APIKey},
		{name: "later commands use the stored login", args: []string{"sandbox", "ls"}, storedKey: e.svc.APIKey},
		{name: "INSIEN_API_KEY beats the stored key", args: []string{"sandbox", "ls"}, env: map[string]string{"INSIEN_API_KEY": bad},
			code: 1, stderr: "invalid_api_key", storedKey: e.svc.APIKey},
		{name: "--api-key beats INSIEN_API_KEY", args: []string{"sandbox", "ls", "--api-key", e.svc.APIKey},
			env: map[string]string{"INSIEN_API_KEY": bad}, storedKey: e.svc.APIKey},
		{name: "INSIEN_API_URL beats the stored endpoint", args: []string{"sandbox", "ls"},
			env: map[string]string{"INSIEN_API_URL": "http://127.0.0.1:1"}, code: 1, stderr: "127.0.0.1:1", storedKey: e.svc.APIKey},
		{name: "--api-url beats INSIEN_API_URL", args: []string{"sandbox", "ls", "--api-url", e.svc.URL},
			env: map[string]string{"INSIEN_API_URL": "http://127.0.0.1:1"}, storedKey: e.svc.APIKey},
		{name: "logout forgets the key", args: []string{"logout"}, stderr: "Removed"},
		{name: "without any credential", args: []string{"sandbox", "ls"}, code: 1, stderr: "no credentials: run 'insien login'"},
		{name: "the key from a flag", args: []string{"login", "--api-key", e.svc.APIKey, "--api-url", e.svc.URL}, storedKey: e.svc.APIKey},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			for k, v := range step.env {
				t.Setenv(k, v)
			}
			r := insien(t, step.stdin, step.args...)
			if r.code != step.code || !strings.Contains(r.stderr, step.stderr) {
				t.Fatalf("insien %s = exit %d, stderr %q; want exit %d, stderr with %q", strings.Join(step.args, " "), r.code, r.stderr, step.code, step.stderr)
			}
			if step.code == 1 && strings.Contains(step.stderr, "invalid_api_key") && !requestID.MatchString(r.stderr) {
				t.Errorf("the API's refusal %q does not name its request id", r.stderr)
			}
			data, err := os.ReadFile(e.config)
			if step.storedKey == "" {
				if err == nil {
					t.Fatalf("%s exists: %s", e.config, data)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var stored storedLogin
			if err := json.Unmarshal(data, &stored); err != nil || stored.APIKey != step.storedKey || stored.APIURL != e.svc.URL {
				t.Fatalf("%s holds %s (%v); want key %s and url %s", e.config, data, err, step.storedKey, e.svc.URL)
			}
			for path, want := range map[string]os.FileMode{e.config: 0o600, filepath.Dir(e.config): 0o700} {
				if info, err := os.Stat(path); err != nil || info.Mode().Perm() != want {
					t.Fatalf("%s: %v, mode %v; want %v", path, err, info.Mode().Perm(), want)
				}
			}
		})
	}
}

func (e *env) testUsage(t *testing.T) {
	for _, args := range [][]string{
		{"frob"},
		{"sandbox", "frob"},
		{"sandbox", "get"},
		{"sandbox", "create", "--timeout", "soon"},
		{"sandbox", "timeout", "00000000-0000-0000-0000-000000000000", "1.5s"},
		{"exec", "--bogus", "x"},
		{"exec", "00000000-0000-0000-0000-000000000000"},
		{"cp", "a", "b"},
		{"cp", "x:relative/path", "b"},
		{"keys", "create"},
		{"completion", "tcsh"},
	} {
		r := insien(t, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("insien %s = exit %d, stderr %q; want a usage error (2)", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

func (e *env) testSandbox(t *testing.T) {
	create := insien(t, "", "sandbox", "create", "--timeout", "10m", "-m", "team=cli", "-e", "TOKEN=s3cret")
	if create.code != 0 {
		t.Fatalf("create = %d: %s", create.code, create.stderr)
	}
	if create.stderr != "" {
		t.Errorf("create wrote %q to stderr: the spinner is for terminals only", create.stderr)
	}
	id := regexp.MustCompile(`(?m)^ID:\s+(\S+)$`).FindStringSubmatch(create.stdout)
	if id == nil {
		t.Fatalf("create printed no ID line:\n%s", create.stdout)
	}
	sb := id[1]
	t.Cleanup(func() { insien(t, "", "sandbox", "rm", sb) })
	for _, want := range []string{"Status:", "running", "Metadata:", "team=cli", "Env:", "TOKEN", "Timeout:", "10m0s"} {
		if !strings.Contains(create.stdout, want) {
			t.Errorf("create's output lacks %q:\n%s", want, create.stdout)
		}
	}
	if strings.Contains(create.stdout, "s3cret") {
		t.Errorf("create printed the env value:\n%s", create.stdout)
	}

	getJSON := func(t *testing.T) map[string]any {
		t.Helper()
		var got map[string]any
		if err := json.Unmarshal([]byte(ok(t, "sandbox", "get", "--json", sb).stdout), &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	steps := []struct {
		name   string
		args   []string
		stdout []*regexp.Regexp
		status string // per sandbox get --json afterwards
	}{
		{name: "ls is a table, newest first", args: []string{"sandbox", "ls"},
			stdout: []*regexp.Regexp{regexp.MustCompile(`^ID\s+STATUS\s+IMAGE\s+CREATED\s+EXPIRES\s+METADATA\n` + sb + `\s+running\s+\S+\s+\d+s ago\s+in \d+m\s+team=cli\n`)}},
		{name: "ls filters by status and metadata", args: []string{"sandbox", "ls", "-q", "--status", "running", "-m", "team=cli"},
			stdout: []*regexp.Regexp{regexp.MustCompile(`^` + sb + `\n$`)}},
		{name: "ls finds nothing for other metadata", args: []string{"sandbox", "ls", "-q", "-m", "team=other"},
			stdout: []*regexp.Regexp{regexp.MustCompile(`^$`)}},
		{name: "ls --json is the API's sandboxes", args: []string{"sandbox", "ls", "--json"},
			stdout: []*regexp.Regexp{regexp.MustCompile(`(?s)^\[\n  \{.*"id": "` + sb + `".*"status": "running"`)}},
		{name: "get", args: []string{"sandbox", "get", sb},
			stdout: []*regexp.Regexp{regexp.MustCompile(`(?m)^Status:\s+running$`), regexp.MustCompile(`(?m)^Expires:\s+.*\(in \d+m\)$`)}},
		{name: "pause", args: []string{"sandbox", "pause", sb}, status: "paused",
			stdout: []*regexp.Regexp{regexp.MustCompile(`^Paused ` + sb + ` \(paused, expires in \d+m\)\n$`)}},
		{name: "resume --json", args: []string{"sandbox", "resume", "--json", sb}, status: "running",
			stdout: []*regexp.Regexp{regexp.MustCompile(`"status": "running"`)}},
		{name: "timeout", args: []string{"sandbox", "timeout", sb, "2h"}, status: "running",
			stdout: []*regexp.Regexp{regexp.MustCompile(`^Timeout set: ` + sb + ` \(running, expires in (1h59m|2h)\)\n$`)}},
		{name: "rm prints what it removed", args: []string{"sandbox", "rm", sb}, status: "stopped",
			stdout: []*regexp.Regexp{regexp.MustCompile(`^` + sb + `\n$`)}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			r := ok(t, step.args...)
			for _, re := range step.stdout {
				if !re.MatchString(r.stdout) {
					t.Errorf("insien %s printed\n%s\nwant it to match %s", strings.Join(step.args, " "), r.stdout, re)
				}
			}
			if step.status != "" {
				if got := getJSON(t)["status"]; got != step.status {
					t.Errorf("status after %s = %v, want %s", step.name, got, step.status)
				}
			}
		})
	}
	if got := getJSON(t); got["end_reason"] != "deleted" {
		t.Errorf("after rm: end_reason %v", got["end_reason"])
	}
}

func (e *env) testAPIErrors(t *testing.T) {
	unknown := "00000000-0000-0000-0000-000000000000"
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"sandbox", "get", unknown}, `insien: getting sandbox ` + unknown + `: sandbox not found \(not_found, request id [0-9A-Za-z-]{8,}\)\n$`},
		{[]string{"sandbox", "create", "--image", "nope:latest"}, `\(validation_failed, request id [0-9A-Za-z-]{8,}\)`},
		{[]string{"exec", unknown, "true"}, `^insien: running true in ` + unknown + `: .*\(not_found, request id`},
		{[]string{"sandbox", "rm", unknown, unknown}, `(?s)removing ` + unknown + `: .*not_found.*removing ` + unknown},
	} {
		r := insien(t, "", tc.args...)
		if r.code != 1 || !regexp.MustCompile(tc.stderr).MatchString(r.stderr) {
			t.Errorf("insien %s = exit %d, stderr %q; want exit 1 and %s", strings.Join(tc.args, " "), r.code, r.stderr, tc.stderr)
		}
	}
}

// timedWriter records when each chunk was written, to tell a stream from a buffer.
type timedWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	chunks []timedChunk
}

type timedChunk struct {
	at   time.Time
	data string
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.chunks = append(w.chunks, timedChunk{time.Now(), string(p)})
	return w.buf.Write(p)
}

func (w *timedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// firstWrite is when text had been written in full.
func (w *timedWriter) firstWrite(text string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var so string
	for _, c := range w.chunks {
		so += c.data
		if strings.Contains(so, text) {
			return c.at
		}
	}
	return time.Time{}
}

func (e *env) testExec(t *testing.T) {
	sb := e.sandbox(t)
	for _, tc := range []struct {
		name           string
		stdin          string
		args           []string
		code           int
		stdout, stderr string
	}{
		{name: "echo", args: []string{"exec", sb, "--", "echo", "hello"}, stdout: "hello\n"},
		{name: "without --", args: []string{"exec", sb, "echo", "-n", "hi"}, stdout: "hi"},
		{name: "exit code and both streams", args: []string{"exec", sb, "--", "sh", "-c", "echo out; echo err >&2; exit 3"},
			code: 3, stdout: "out\n", stderr: "err\n"},
		{name: "env and workdir", args: []string{"exec", "-e", "A=1", "-w", "/tmp", sb, "--", "sh", "-c", `echo "$A $PWD"`}, stdout: "1 /tmp\n"},
		{name: "stdin with -i", stdin: "abc", args: []string{"exec", "-i", sb, "--", "wc", "-c"}, stdout: "3\n"},
		{name: "timeout", args: []string{"exec", "--timeout", "1s", sb, "--", "sleep", "30"},
			code: 137, stderr: "insien: the command timed out after 1s and was killed\n"},
		{name: "--json collects", args: []string{"exec", "--json", sb, "--", "sh", "-c", "printf out; exit 4"}, code: 4,
			stdout: `"exit_code": 4,` + "\n" + `  "stdout": "out",`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := insien(t, tc.stdin, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || tc.stdout == "" && r.stdout != "" || r.stderr != tc.stderr {
				t.Fatalf("insien %s = exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout %q, stderr %q",
					strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
	t.Run("Ctrl-C ends the remote command and exits 130", func(t *testing.T) {
		cmd := exec.Command(e.binary(t), "exec", sb, "--", "sh", "-c", "echo started; sleep 60; echo never")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if line != "started\n" {
			cmd.Process.Kill()
			t.Fatalf("read %q, %v", line, err)
		}
		start := time.Now()
		cmd.Process.Signal(os.Interrupt)
		err = cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted || time.Since(start) > 5*time.Second {
			t.Fatalf("after Ctrl-C: %v after %v", err, time.Since(start))
		}
		// the service kills a command whose client left: no sleep 60 is left behind
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := ok(t, "exec", sb, "--", "sh", "-c", "ps | grep -c '[s]leep 60' || true")
			if strings.TrimSpace(r.stdout) == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the remote sleep still runs: %s", r.stdout)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	t.Run("streams output as it comes", func(t *testing.T) {
		var stdout, stderr timedWriter
		start := time.Now()
		code := run([]string{"exec", sb, "--", "sh", "-c", "echo one; sleep 3; echo two >&2"}, strings.NewReader(""), &stdout, &stderr)
		if code != 0 || stdout.String() != "one\n" || stderr.String() != "two\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
		}
		one, two := stdout.firstWrite("one\n"), stderr.firstWrite("two\n")
		if gap := two.Sub(one); gap < 1500*time.Millisecond {
			t.Errorf("one was printed %v after the start and only %v before two: not streamed", one.Sub(start), gap)
		}
	})
}

func (e *env) testCp(t *testing.T) {
	sb := e.sandbox(t)
	dir := t.TempDir()
	payload := make([]byte, 300<<10)
	rand.Read(payload)
	payload = append(payload, []byte("\x00\r\n\xff")...) // and every awkward byte
	ok(t, "exec", sb, "--", "mkdir", "/tmp/d")
	local := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(local, payload, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		stdin []byte
		args  []string
		file  string // the local file that must equal payload afterwards ("" : stdout must)
	}{
		{name: "in", args: []string{"cp", local, sb + ":/tmp/in.bin"}},
		{name: "out", args: []string{"cp", sb + ":/tmp/in.bin", filepath.Join(dir, "out.bin")}, file: filepath.Join(dir, "out.bin")},
		{name: "stdin in", stdin: payload, args: []string{"cp", "-", sb + ":/tmp/stdin.bin"}},
		{name: "out to stdout", args: []string{"cp", sb + ":/tmp/stdin.bin", "-"}},
		{name: "into a directory with /", args: []string{"cp", local, sb + ":/tmp/"}},
		{name: "into an existing directory", args: []string{"cp", local, sb + ":/tmp/d"}},
		{name: "out into a local directory", args: []string{"cp", sb + ":/tmp/d/payload.bin", dir + "/sub/"}, file: filepath.Join(dir, "sub", "payload.bin")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
			var stdout, stderr bytes.Buffer
			code := run(tc.args, bytes.NewReader(tc.stdin), &stdout, &stderr)
			if code != 0 || stderr.Len() != 0 {
				t.Fatalf("insien %s = exit %d, stderr %q", strings.Join(tc.args, " "), code, stderr.String())
			}
			got := stdout.Bytes()
			if tc.file != "" {
				var err error
				if got, err = os.ReadFile(tc.file); err != nil {
					t.Fatal(err)
				}
			} else if tc.args[2] != "-" {
				if len(got) != 0 {
					t.Fatalf("copy in printed %q", got)
				}
				return
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("copied %d bytes, not the %d sent (or not the same ones)", len(got), len(payload))
			}
		})
	}
	t.Run("in keeps the mode, lands where asked", func(t *testing.T) {
		want := map[string]string{"/tmp/in.bin": "0755", "/tmp/stdin.bin": "0644", "/tmp/payload.bin": "0755", "/tmp/d/payload.bin": "0755"}
		for p, mode := range want {
			entries, err := e.sdk(t).Sandboxes.Connect(sb).Files.List(context.Background(), filepath.Dir(p))
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, en := range entries {
				if deref(en.Path) == p || filepath.Join(filepath.Dir(p), deref(en.Name)) == p {
					found = true
					if deref(en.Mode) != mode || deref(en.Size) != len(payload) {
						t.Errorf("%s: mode %s, size %d; want %s, %d", p, deref(en.Mode), deref(en.Size), mode, len(payload))
					}
				}
			}
			if !found {
				t.Errorf("%s was not written", p)
			}
		}
	})
	t.Run("a missing file", func(t *testing.T) {
		out := filepath.Join(dir, "missing")
		r := insien(t, "", "cp", sb+":/nope", out)
		if r.code != 1 || !strings.Contains(r.stderr, "not_found") || !requestID.MatchString(r.stderr) {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("a failed copy left %s", out)
		}
	})
}

func (e *env) testLogs(t *testing.T) {
	sb := e.sandbox(t, "--", "sh", "-c", "echo first; echo oops >&2; sleep 3; echo second; sleep 1")
	created := time.Now()
	t.Run("logs prints what was written so far, stderr on stderr", func(t *testing.T) {
		r := ok(t, "logs", sb)
		if r.stdout != "first\n" || r.stderr != "oops\n" {
			t.Fatalf("stdout %q, stderr %q", r.stdout, r.stderr)
		}
	})
	t.Run("--json is a line per log line", func(t *testing.T) {
		r := ok(t, "logs", "--json", "--tail", "1", sb)
		var line struct{ Stream, Text string }
		if err := json.Unmarshal([]byte(r.stdout), &line); err != nil || line.Text == "" {
			t.Fatalf("%q: %v", r.stdout, err)
		}
	})
	t.Run("-f follows until the sandbox stops", func(t *testing.T) {
		if since := time.Since(created); since > 2500*time.Millisecond {
			t.Skipf("the machine is too slow to tell: %v since the create, second may be written already", since)
		}
		var stdout, stderr timedWriter
		code := run([]string{"logs", "-f", sb}, strings.NewReader(""), &stdout, &stderr)
		returned := time.Now()
		// second was written after logs -f began: it was followed
		if code != 0 || stdout.String() != "first\nsecond\n" || stderr.String() != "oops\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
		}
		// and the stream ended with the sandbox, which lives a second past second
		if wait := returned.Sub(stdout.firstWrite("second\n")); wait < 800*time.Millisecond {
			t.Errorf("logs -f returned %v after second, before the sandbox ended", wait)
		}
	})
}

func (e *env) testKeys(t *testing.T) {
	session := e.svc.Session(t)
	t.Run("an API key is refused, saying what is needed", func(t *testing.T) {
		r := insien(t, "", "keys", "ls")
		if r.code != 1 || !strings.Contains(r.stderr, "session_required") || !strings.Contains(r.stderr, "needs a Clerk session token") ||
			!requestID.MatchString(r.stderr) {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Setenv("INSIEN_API_KEY", session)
	r := ok(t, "keys", "create", "--name", "cli test", "--scope", "sandboxes:read", "--expires-in", "720h")
	key := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(key, "isk_") || !strings.Contains(r.stderr, `Created key "cli test"`) {
		t.Fatalf("create printed %q, %q", r.stdout, r.stderr)
	}
	id := regexp.MustCompile(`id ([0-9a-f-]{36})`).FindStringSubmatch(r.stderr)[1]
	for _, tc := range []struct {
		name string
		args []string
		code int
		want *regexp.Regexp // on stdout
	}{
		{"the new key works", []string{"sandbox", "ls", "--api-key", key}, 0, regexp.MustCompile(`^ID`)},
		{"ls", []string{"keys", "ls"}, 0, regexp.MustCompile(`(?m)^` + id + `\s+cli test\s+isk_\S*…` + key[len(key)-4:] + `\s+sandboxes:read\s+expires in 29d\s+`)},
		{"ls --json", []string{"keys", "ls", "--json"}, 0, regexp.MustCompile(`"id": "` + id + `"`)},
		{"revoke", []string{"keys", "revoke", id}, 0, regexp.MustCompile(`^` + id + `\n$`)},
		{"revoked in ls", []string{"keys", "ls"}, 0, regexp.MustCompile(`(?m)^` + id + `\s+cli test\s+\S+\s+sandboxes:read\s+revoked\s+`)},
		{"the revoked key is refused", []string{"sandbox", "ls", "--api-key", key}, 1, regexp.MustCompile(`^$`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := insien(t, "", tc.args...)
			if r.code != tc.code || !tc.want.MatchString(r.stdout) {
				t.Fatalf("insien %s = exit %d\nstdout %s\nstderr %s\nwant exit %d and %s", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.code, tc.want)
			}
		})
	}
}

func (e *env) testCompletion(t *testing.T) {
	sb := e.sandbox(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"completion", "bash"}, "__start_insien"},
		{[]string{"completion", "zsh"}, "#compdef insien"},
		{[]string{"completion", "fish"}, "complete -c insien"},
		{[]string{"__complete", "sandbox", "r"}, "resume\tResume a paused sandbox"},
		// what the scripts ask for a sandbox id: the live sandboxes
		{[]string{"__complete", "exec", ""}, sb + "\trunning "},
	} {
		if r := ok(t, tc.args...); !strings.Contains(r.stdout, tc.want) {
			t.Errorf("insien %s printed\n%s\nwant %q in it", strings.Join(tc.args, " "), r.stdout, tc.want)
		}
	}
}
