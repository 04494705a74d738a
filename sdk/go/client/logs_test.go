package client_test

import (
	"slices"
	"testing"
	"time"

	"github.com/insien/orchestrator/sdk/go/client"
)

// collectLogs runs Logs to its end and returns "stream text" lines.
func collectLogs(t *testing.T, sb *client.Sandbox, opts client.LogOptions) []string {
	t.Helper()
	var got []string
	for l, err := range sb.Logs(testContext(t), opts) {
		if err != nil {
			t.Fatalf("Logs(%+v): %v", opts, err)
		}
		got = append(got, string(*l.Stream)+" "+*l.Text)
	}
	return got
}

// TestLogs: the main process's output, whole or its tail or since a time. (Not binary: Docker's
// log driver stores lines as JSON strings and replaces bytes that are not UTF-8 before the
// service sees them.)
func TestLogs(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	sb := newSandbox(t, c, client.CreateSandboxParams{
		Command: &[]string{"sh", "-c", `echo one; echo two; echo oops >&2; echo 'ünï côdé'; echo three; exec sleep 600`},
	})
	all := []string{"stdout one", "stdout two", "stderr oops", "stdout ünï côdé", "stdout three"}
	deadline := time.Now().Add(10 * time.Second)
	for len(collectLogs(t, sb, client.LogOptions{})) < len(all) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	whole := collectLogs(t, sb, client.LogOptions{})
	stdoutOnly := func(lines []string) []string {
		return slices.DeleteFunc(lines, func(l string) bool { return l[:6] != "stdout" })
	}
	tests := []struct {
		name   string
		opts   client.LogOptions
		filter func([]string) []string // compare only these lines (stdout and stderr interleave freely)
		want   []string
	}{
		{name: "all", opts: client.LogOptions{}, filter: stdoutOnly, want: stdoutOnly(slices.Clone(all))},
		{name: "all, stderr too", opts: client.LogOptions{}, filter: func(l []string) []string { slices.Sort(l); return l },
			want: func() []string { s := slices.Clone(all); slices.Sort(s); return s }()},
		// The engine orders lines as it received them, stdout and stderr apart: the tail is the
		// end of the whole, whatever that order is.
		{name: "tail", opts: client.LogOptions{Tail: 2}, want: whole[max(len(whole)-2, 0):]},
		{name: "since the future", opts: client.LogOptions{Since: time.Now().Add(time.Hour)}, want: nil},
		{name: "since the past", opts: client.LogOptions{Since: time.Now().Add(-time.Hour)}, filter: stdoutOnly, want: stdoutOnly(slices.Clone(all))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := collectLogs(t, sb, tt.opts)
			if tt.filter != nil {
				got = tt.filter(got)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Logs(%+v) = %q, want %q", tt.opts, got, tt.want)
			}
		})
	}
}

// TestLogsFollow: followed logs arrive as they are written and end when the sandbox stops.
func TestLogsFollow(t *testing.T) {
	t.Parallel()
	c := newClient(t)

	t.Run("until the process exits", func(t *testing.T) {
		sb := newSandbox(t, c, client.CreateSandboxParams{
			Command: &[]string{"sh", "-c", "sleep 1; for i in 1 2 3 4; do echo tick$i; sleep 0.5; done"},
		})
		start := time.Now()
		var got []string
		var arrived []time.Duration
		for l, err := range sb.Logs(testContext(t), client.LogOptions{Follow: true}) {
			if err != nil {
				t.Fatalf("Logs: %v", err)
			}
			got = append(got, *l.Text)
			arrived = append(arrived, time.Since(start))
		}
		if !slices.Equal(got, []string{"tick1", "tick2", "tick3", "tick4"}) {
			t.Fatalf("followed %q", got)
		}
		if spread := arrived[3] - arrived[0]; spread < time.Second {
			t.Errorf("the lines arrived within %v of each other: want them as written, 0.5 s apart", spread)
		}
		if err := sb.Refresh(testContext(t)); err != nil || sb.Status == "running" {
			t.Errorf("after the stream ended: status %s (%v), want the sandbox ended", sb.Status, err)
		}
	})

	t.Run("until the sandbox is deleted", func(t *testing.T) {
		sb := newSandbox(t, c, client.CreateSandboxParams{Command: &[]string{"sh", "-c", "echo ready; exec sleep 600"}})
		n := 0
		for l, err := range sb.Logs(testContext(t), client.LogOptions{Follow: true}) {
			if err != nil {
				t.Fatalf("Logs: %v", err)
			}
			if n++; *l.Text == "ready" {
				go c.Sandboxes.Connect(sb.ID).Delete(testContext(t))
			}
		}
		if n != 1 {
			t.Errorf("%d lines, want 1", n)
		}
	})

	t.Run("break", func(t *testing.T) {
		sb := newSandbox(t, c, client.CreateSandboxParams{Command: &[]string{"sh", "-c", "while true; do echo y; sleep 0.1; done"}})
		n := 0
		for _, err := range sb.Logs(testContext(t), client.LogOptions{Follow: true}) {
			if err != nil {
				t.Fatalf("Logs: %v", err)
			}
			if n++; n == 3 {
				break
			}
		}
		// The stream is closed: the sandbox's connection count drops back.
		deadline := time.Now().Add(10 * time.Second)
		for {
			if err := sb.Refresh(testContext(t)); err != nil {
				t.Fatal(err)
			}
			if sb.Raw.ActiveConnections != nil && *sb.Raw.ActiveConnections == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("active connections %v after leaving the loop, want 0", sb.Raw.ActiveConnections)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
