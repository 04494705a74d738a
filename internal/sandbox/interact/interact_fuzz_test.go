package interact

import (
	"bytes"
	"fmt"
	"net/http"
	"path"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
)

// wantInvalid fails unless err is a 400 naming one of fields.
func wantInvalid(t *testing.T, err error, fields ...string) *apierror.Error {
	t.Helper()
	e, ok := apierror.As(err)
	if !ok || e.Status != http.StatusBadRequest || e.Message == "" {
		t.Fatalf("%v is not a 400 with a message", err)
	}
	for _, f := range fields {
		if e.Field == f {
			return e
		}
	}
	t.Fatalf("%v names field %q, want one of %q", err, e.Field, fields)
	return nil
}

func FuzzCheckPath(f *testing.F) {
	for _, seed := range []string{"/", "/tmp/a.txt", "/dev/zero", "/proc/cpuinfo", "/a/../b", "tmp/a", "", "//x", "/x/", "/a\x00b", "/-rf"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := CheckPath(p)
		if err != nil {
			wantInvalid(t, err, "path")
			return
		}
		if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsRune(p, 0) {
			t.Fatalf("CheckPath accepted %q", p)
		}
	})
}

func FuzzParseMode(f *testing.F) {
	for _, seed := range []string{"", "0644", "755", "0001", "0777", "0", "0999", "4755", "-1", "0x1ff", "644 ", "00644", "+644", "७५५"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		mode, err := ParseMode(raw)
		if err != nil {
			wantInvalid(t, err, "mode")
			return
		}
		if raw == "" {
			if mode != 0 {
				t.Fatalf("ParseMode(\"\") = %o", mode)
			}
			return
		}
		if mode < 1 || mode > 0o777 || fmt.Sprintf("%o", uint32(mode)) != strings.TrimLeft(raw, "0") {
			t.Fatalf("ParseMode(%q) = %o", raw, mode)
		}
	})
}

// FuzzValidateExec: every refusal is a 400 naming the field at fault — for the shared size budget,
// the one whose bytes take the total past it — and what passes is runnable.
func FuzzValidateExec(f *testing.F) {
	s := NewService(Params{Sandbox: config.Sandbox{ExecMaxTimeout: 10 * time.Minute}, Log: zap.NewNop()})
	big := strings.Repeat("x", maxArgvBytes)
	f.Add("sh", "-c", "X", "1", "/tmp", 60, "")
	f.Add("", "", "", "", "", 0, "")
	f.Add("echo", "a\x00b", "A", "v", "", 1, "")
	f.Add("true", "", "1BAD", "x", "tmp", 601, "")
	f.Add("true", "", "HUGE", big, "", 5, "") // the issue: an oversized env was blamed on cmd
	f.Add(big, "", "", "", "", 5, "")         // an oversized cmd
	f.Add("true", big[:maxArgvBytes-10], "E", "vvvvvvvvvv", "", 5, "")
	f.Add("true", "", "", "", "/"+big, 5, "") // an oversized cwd
	f.Add("true", "", "", "", "/no/such/dir", 5, "x")
	f.Fuzz(func(t *testing.T, prog, arg, envName, envValue, cwd string, timeout int, stdin string) {
		in := ExecInput{Cmd: []string{prog, arg}, Cwd: cwd, TimeoutSeconds: &timeout, Stdin: &stdin}
		if envName != "" {
			in.Env = map[string]string{envName: envValue}
		}
		cmdBytes := len(prog) + len(arg) + 2
		envBytes := 0
		if envName != "" {
			envBytes = len(envName) + len(envValue) + 2
		}
		spec, d, err := s.validateExec(in)
		if err != nil {
			e := wantInvalid(t, err, "cmd", "env", "cwd", "timeout_seconds", "stdin")
			switch {
			case e.Field == "cmd" && prog != "" && !strings.ContainsRune(prog+arg, 0) && cmdBytes <= maxArgvBytes:
				t.Fatalf("cmd of %d bytes blamed: %v", cmdBytes, err)
			case e.Field == "env" && cmdBytes > maxArgvBytes:
				t.Fatalf("env blamed for an oversized cmd: %v", err)
			case e.Field == "cwd" && cmdBytes+envBytes > maxArgvBytes:
				t.Fatalf("cwd blamed for an oversized cmd or env: %v", err)
			}
			return
		}
		if len(spec.Cmd) == 0 || spec.Cmd[0] == "" || cmdBytes+envBytes+len(cwd) > maxArgvBytes ||
			(cwd != "" && !path.IsAbs(cwd)) || d < time.Second || d > 10*time.Minute || len(stdin) > MaxStdinBytes {
			t.Fatalf("accepted %+v (timeout %v)", spec, d)
		}
		for _, a := range spec.Cmd {
			if bytes.IndexByte([]byte(a), 0) >= 0 {
				t.Fatalf("accepted a NUL in %q", a)
			}
		}
	})
}
