package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/testenv"
)

// operator runs the binary against one database and Redis index, as an operator on a machine
// without Clerk would.
type operator struct {
	t   *testing.T
	env map[string]string
}

// result is one finished command.
type result struct {
	stdout, stderr string
	code           int
}

func newOperator(t *testing.T) *operator {
	t.Helper()
	op := &operator{t: t, env: map[string]string{
		"DATABASE_URL":   testenv.DatabaseURL(t),
		"REDIS_URL":      testenv.RedisURL(t),
		"ORCH_LOG_LEVEL": "warn",
		"DOCKER_HOST":    os.Getenv(testenv.EnvDockerHost),
	}}
	if r := op.run("migrate", "up"); r.code != 0 {
		t.Fatalf("migrate up: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return op
}

func (op *operator) run(args ...string) result {
	op.t.Helper()
	cmd := command(op.t, op.env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		op.t.Fatalf("%v: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// create runs `keys create` and returns the printed key, checking it is the only line on stdout.
func (op *operator) create(args ...string) string {
	op.t.Helper()
	r := op.run(append([]string{"keys", "create"}, args...)...)
	if r.code != 0 {
		op.t.Fatalf("keys create %v: exit %d: %s", args, r.code, r.stderr)
	}
	key := strings.TrimSuffix(r.stdout, "\n")
	if strings.Contains(key, "\n") || !apikeys.WellFormed(key) {
		op.t.Fatalf("keys create %v: stdout must be exactly one well-formed key, got %q", args, r.stdout)
	}
	if strings.Contains(r.stderr, key) {
		op.t.Fatalf("keys create %v: the key also went to stderr", args)
	}
	return key
}

// listedKey is one row of `keys list`.
type listedKey struct{ id, name, masked, scopes, state string }

// list runs `keys list --email` and parses its table (names in these tests have no spaces).
func (op *operator) list(email string) (rows []listedKey, raw string) {
	op.t.Helper()
	r := op.run("keys", "list", "--email", email)
	if r.code != 0 {
		op.t.Fatalf("keys list --email %s: exit %d: %s", email, r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "ID") {
		op.t.Fatalf("keys list: no header in %q", r.stdout)
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 6 {
			op.t.Fatalf("keys list: cannot parse row %q", line)
		}
		rows = append(rows, listedKey{id: f[0], name: f[1], masked: f[2], scopes: f[3], state: f[5]})
	}
	return rows, r.stdout
}

func (op *operator) find(email, name string) listedKey {
	op.t.Helper()
	rows, raw := op.list(email)
	for _, row := range rows {
		if row.name == name {
			return row
		}
	}
	op.t.Fatalf("no key named %s in\n%s", name, raw)
	return listedKey{}
}

// rows counts users and API keys in the database.
func (op *operator) rows() string {
	op.t.Helper()
	db := testenv.OpenSQL(op.t, op.env["DATABASE_URL"])
	var users, keys int
	if err := db.QueryRow("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM api_keys)").Scan(&users, &keys); err != nil {
		op.t.Fatal(err)
	}
	return fmt.Sprintf("%d users, %d keys", users, keys)
}

func masked(key string) string {
	return apikeys.DisplayPrefix(key) + "…" + apikeys.LastFour(key)
}

// TestKeysCommands: the operator path for machines without Clerk. Keys are printed once on stdout,
// listed masked, scoped and revoked by id; bad input says what is wrong and creates nothing.
func TestKeysCommands(t *testing.T) {
	op := newOperator(t)
	const email = "ops@example.com"

	first := op.create("--email", email, "--name", "ci")
	second := op.create("--email", email, "--name", "ci-2")
	rows, raw := op.list(email)
	if len(rows) != 2 {
		t.Fatalf("a second key for the same email must reuse the user: want 2 keys, got\n%s", raw)
	}
	if got := op.rows(); got != "1 users, 2 keys" {
		t.Fatalf("after two creates for one email: %s", got)
	}
	for _, key := range []string{first, second} {
		if strings.Contains(raw, key) || strings.Contains(raw, key[len(apikeys.DisplayPrefix(key)):len(key)-4]) {
			t.Fatalf("keys list shows a secret:\n%s", raw)
		}
		if !strings.Contains(raw, masked(key)) {
			t.Errorf("keys list should show %s masked as %s:\n%s", key[:8], masked(key), raw)
		}
	}
	if row := op.find(email, "ci"); row.scopes != "sandboxes:read,sandboxes:write" || row.state != "active" {
		t.Errorf("a key without --scopes: %+v, want every scope, active", row)
	}

	reader := op.create("--email", email, "--name", "reader", "--scopes", "sandboxes:read")
	row := op.find(email, "reader")
	if row.scopes != "sandboxes:read" || row.masked != masked(reader) {
		t.Errorf("--scopes sandboxes:read: listed as %+v", row)
	}

	r := op.run("keys", "revoke", row.id)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "revoked "+row.id {
		t.Fatalf("keys revoke %s: exit %d %q %q", row.id, r.code, r.stdout, r.stderr)
	}
	if got := op.find(email, "reader"); got.state != "revoked" {
		t.Errorf("after revoke: state %q, want revoked", got.state)
	}
	if got := op.find(email, "ci"); got.state != "active" {
		t.Errorf("revoking one key changed another: %+v", got)
	}

	before := op.rows()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantMsg  string
	}{
		{"bad email", []string{"keys", "create", "--email", "not-an-email", "--name", "x"}, 1, "is not an email address"},
		{"email with a display name", []string{"keys", "create", "--email", "Ops <x@example.com>", "--name", "x"}, 1, "is not an email address"},
		{"missing --name", []string{"keys", "create", "--email", "x@example.com"}, 2, "usage: orchestrator keys create"},
		{"missing --email", []string{"keys", "create", "--name", "x"}, 2, "usage: orchestrator keys create"},
		{"unknown scope, new email", []string{"keys", "create", "--email", "x@example.com", "--name", "x", "--scopes", "admin"}, 1, `unknown scope "admin"`},
		{"unknown scope, known email", []string{"keys", "create", "--email", email, "--name", "x", "--scopes", "sandboxes:read,admin"}, 1, `unknown scope "admin"`},
		{"name too long, known email", []string{"keys", "create", "--email", email, "--name", strings.Repeat("n", 101)}, 1, "name must be 1 to 100 characters"},
		{"name too long, new email", []string{"keys", "create", "--email", "y@example.com", "--name", strings.Repeat("n", 101)}, 1, "name must be 1 to 100 characters"},
		{"unknown flag", []string{"keys", "create", "--email", email, "--name", "x", "--admin"}, 2, "flag provided but not defined"},
		{"revoke an unknown id", []string{"keys", "revoke", "00000000-0000-0000-0000-000000000001"}, 1, "not found"},
		{"revoke a non-uuid", []string{"keys", "revoke", "nope"}, 2, "not a key id: nope"},
		{"revoke without an id", []string{"keys", "revoke"}, 2, "usage: orchestrator keys revoke"},
		{"list an unknown email", []string{"keys", "list", "--email", "nobody@example.com"}, 1, "not found"},
		{"unknown subcommand", []string{"keys", "rotate"}, 2, `unknown keys command "rotate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := op.run(tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, tt.wantCode, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout should be empty, got %q", r.stdout)
			}
			// The flag package adds its usage after its own one-line error; our messages are one line.
			msg := strings.TrimSpace(r.stderr)
			if tt.wantMsg != "flag provided but not defined" {
				if strings.Contains(msg, "\n") {
					t.Errorf("stderr should be one line, got:\n%s", msg)
				}
			} else {
				msg, _, _ = strings.Cut(msg, "\n")
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("stderr %q should say %q", msg, tt.wantMsg)
			}
			if after := op.rows(); after != before {
				t.Errorf("bad input changed the database: %s before, %s after", before, after)
				before = after
			}
		})
	}
}

// TestKeysAuthenticateAgainstServe: a key printed by the CLI authenticates against the running
// service, and revoking it from the CLI takes effect there at once.
func TestKeysAuthenticateAgainstServe(t *testing.T) {
	op := newOperator(t)
	key := op.create("--email", "ops@example.com", "--name", "ci")

	port := testenv.FreePort(t)
	env := map[string]string{
		"PORT":                  fmt.Sprint(port),
		"ORCH_HTTP_DRAIN_DELAY": "0s",
		"JWT_SECRET":            "keys-test-secret-that-is-long-enough-0123456789",
	}
	for k, v := range op.env {
		env[k] = v
	}
	cmd := command(t, env, "serve")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("serve output:\n%s", logs.String())
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	testenv.Eventually(t, "ready", 20*time.Second, func() bool {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("serve exited before it was ready: %v", err)
		default:
		}
		resp, err := http.Get(base + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	get := func(headers map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"/api/keys", nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var body apierror.Body
		if err := json.Unmarshal(data, &body); err != nil || body.Error.Code == "" || body.Error.RequestID == "" {
			t.Fatalf("%d: not the error shape: %s", resp.StatusCode, data)
		}
		return resp.StatusCode, body.Error.Code
	}
	typo := []byte(key)
	i := len(apikeys.Prefix) + 3
	typo[i] = map[bool]byte{true: 'B', false: 'A'}[typo[i] == 'A']

	tests := []struct {
		name       string
		headers    map[string]string
		wantStatus int
		wantCode   string
	}{
		// Authenticated, but an API key cannot manage keys: the route wants a Clerk session.
		{"the key as bearer", map[string]string{"Authorization": "Bearer " + key}, 403, "session_required"},
		{"the key as X-API-Key", map[string]string{"X-API-Key": key}, 403, "session_required"},
		{"a mistyped key", map[string]string{"Authorization": "Bearer " + string(typo)}, 401, "invalid_api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, code := get(tt.headers); status != tt.wantStatus || code != tt.wantCode {
				t.Fatalf("GET /api/keys: %d %s, want %d %s", status, code, tt.wantStatus, tt.wantCode)
			}
		})
	}

	id := op.find("ops@example.com", "ci").id
	if r := op.run("keys", "revoke", id); r.code != 0 {
		t.Fatalf("keys revoke: exit %d: %s", r.code, r.stderr)
	}
	// The key was just used, so the service holds it in memory: the revocation's announcement
	// (Redis pub/sub, from the command's process) must evict it within a second.
	testenv.Eventually(t, "the service to refuse the revoked key", time.Second, func() bool {
		status, code := get(map[string]string{"Authorization": "Bearer " + key})
		return status == 401 && code == "api_key_revoked"
	})
}
