package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/insien/orchestrator/sdk/go/client"
)

// TestExec: how commands end, as Exec reports it; a non-zero exit is a result, never an error.
func TestExec(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	sb := newSandbox(t, c, client.CreateSandboxParams{Env: &map[string]string{"FROM_CREATE": "yes"}})
	tests := []struct {
		name       string
		cmd        []string
		opts       []client.ExecOption
		wantCode   int
		wantStdout string
		wantStderr string
		timedOut   bool
	}{
		{name: "success", cmd: []string{"echo", "hello"}, wantStdout: "hello\n"},
		{name: "exit code", cmd: []string{"sh", "-c", "exit 3"}, wantCode: 3},
		{name: "false", cmd: []string{"false"}, wantCode: 1},
		{name: "stdout and stderr apart", cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 2"}, wantCode: 2, wantStdout: "out\n", wantStderr: "err\n"},
		{name: "killed by a signal", cmd: []string{"sh", "-c", "kill -9 $$"}, wantCode: 137},
		{name: "binary output", cmd: []string{"printf", `\377\000\001\n`}, wantStdout: "\xff\x00\x01\n"},
		{name: "env", cmd: []string{"sh", "-c", "echo $A-$FROM_CREATE"}, opts: []client.ExecOption{client.WithEnv(map[string]string{"A": "b"})}, wantStdout: "b-yes\n"},
		{name: "cwd", cmd: []string{"pwd"}, opts: []client.ExecOption{client.WithCwd("/tmp")}, wantStdout: "/tmp\n"},
		{name: "stdin", cmd: []string{"cat"}, opts: []client.ExecOption{client.WithStdin("fed\n")}, wantStdout: "fed\n"},
		{name: "timeout", cmd: []string{"sleep", "30"}, opts: []client.ExecOption{client.WithTimeout(time.Second)}, wantCode: 137, timedOut: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := sb.Exec(testContext(t), tt.cmd, tt.opts...)
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			if res.ExitCode != tt.wantCode || res.Stdout != tt.wantStdout || res.Stderr != tt.wantStderr || res.TimedOut != tt.timedOut {
				t.Errorf("Exec = exit %d stdout %q stderr %q timed out %v; want exit %d stdout %q stderr %q timed out %v",
					res.ExitCode, res.Stdout, res.Stderr, res.TimedOut, tt.wantCode, tt.wantStdout, tt.wantStderr, tt.timedOut)
			}
			if res.Duration <= 0 {
				t.Errorf("Duration = %v, want > 0", res.Duration)
			}
		})
	}
}

// TestExecErrors: what keeps a command from running is *client.Error, in both modes.
func TestExecErrors(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	sb := newSandbox(t, c, client.CreateSandboxParams{})
	tests := []struct {
		name      string
		cmd       []string
		opts      []client.ExecOption
		wantCode  string
		wantField string
	}{
		{name: "no command", cmd: []string{}, wantCode: "validation_failed", wantField: "cmd"},
		{name: "missing cwd", cmd: []string{"pwd"}, opts: []client.ExecOption{client.WithCwd("/no/such/dir")}, wantCode: "cwd_not_found", wantField: "cwd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sb.Exec(testContext(t), tt.cmd, tt.opts...)
			checkAPIError(t, "Exec", err, 400, tt.wantCode, tt.wantField)
			var streamErr error
			for _, err := range sb.ExecStream(testContext(t), tt.cmd, tt.opts...) {
				if err != nil {
					streamErr = err
				}
			}
			checkAPIError(t, "ExecStream", streamErr, 400, tt.wantCode, tt.wantField)
		})
	}
}

// checkAPIError fails unless err is a *client.Error from the service with this status and code.
func checkAPIError(t *testing.T, what string, err error, status int, code, field string) {
	t.Helper()
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("%s: error %v (%T), want *client.Error", what, err, err)
	}
	if apiErr.StatusCode != status || apiErr.Code != code || apiErr.Field != field {
		t.Errorf("%s: %d %s (field %q), want %d %s (field %q)", what, apiErr.StatusCode, apiErr.Code, apiErr.Field, status, code, field)
	}
	if apiErr.RequestID == "" || apiErr.Message == "" {
		t.Errorf("%s: request id %q, message %q: want both", what, apiErr.RequestID, apiErr.Message)
	}
	if !strings.Contains(apiErr.Error(), code) || !strings.Contains(apiErr.Error(), apiErr.RequestID) {
		t.Errorf("%s: Error() = %q, want the code and the request id in it", what, apiErr.Error())
	}
}

// TestExecStream: output arrives per stream in the order written, while the command runs, and
// the exit event comes last, once.
func TestExecStream(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	sb := newSandbox(t, c, client.CreateSandboxParams{})

	t.Run("order", func(t *testing.T) {
		var stdout, stderr strings.Builder
		var exits []*client.ExecResult
		script := "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; printf '\\377'; exit 4"
		for ev, err := range sb.ExecStream(testContext(t), []string{"sh", "-c", script}) {
			if err != nil {
				t.Fatalf("ExecStream: %v", err)
			}
			if len(exits) > 0 {
				t.Fatalf("an event after exit: %+v", ev)
			}
			switch ev.Stream {
			case client.StreamStdout:
				stdout.Write(ev.Data)
			case client.StreamStderr:
				stderr.Write(ev.Data)
			case client.StreamExit:
				exits = append(exits, ev.Result)
			default:
				t.Fatalf("event with stream %q", ev.Stream)
			}
		}
		if want := "out1\nout2\nout3\nout4\nout5\n\xff"; stdout.String() != want {
			t.Errorf("stdout = %q, want %q", stdout.String(), want)
		}
		if want := "err1\nerr2\nerr3\nerr4\nerr5\n"; stderr.String() != want {
			t.Errorf("stderr = %q, want %q", stderr.String(), want)
		}
		if len(exits) != 1 || exits[0].ExitCode != 4 {
			t.Fatalf("exit events %+v, want one with exit code 4", exits)
		}
	})

	t.Run("live", func(t *testing.T) {
		start := time.Now()
		var firstAt time.Duration
		for ev, err := range sb.ExecStream(testContext(t), []string{"sh", "-c", "echo first; sleep 2; echo second"}) {
			if err != nil {
				t.Fatalf("ExecStream: %v", err)
			}
			if ev.Stream == client.StreamStdout && firstAt == 0 {
				firstAt = time.Since(start)
			}
		}
		if total := time.Since(start); firstAt == 0 || firstAt > total-time.Second {
			t.Errorf("first output after %v of %v: want it before the command's sleep ended", firstAt, total)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		var errs []error
		for ev, err := range sb.ExecStream(ctx, []string{"sh", "-c", "echo started; sleep 30"}) {
			if err != nil {
				errs = append(errs, err)
			}
			if ev.Stream == client.StreamStdout {
				cancel()
			}
		}
		if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
			t.Errorf("errors %v, want one context.Canceled", errs)
		}
	})

	t.Run("leaving the loop kills the command", func(t *testing.T) {
		ctx := testContext(t)
		for ev, err := range sb.ExecStream(ctx, []string{"sh", "-c", "echo started; sleep 1; touch /tmp/survived"}) {
			if err != nil {
				t.Fatalf("ExecStream: %v", err)
			}
			if ev.Stream == client.StreamStdout {
				break
			}
		}
		time.Sleep(2500 * time.Millisecond)
		res, err := sb.Exec(ctx, []string{"ls", "/tmp/survived"})
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode == 0 {
			t.Error("the command went on after the loop ended: /tmp/survived exists")
		}
	})
}
