package client_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insien/orchestrator/sdk/go/client"
)

// screen collects what a terminal shows, so a test can wait for some text to appear.
type screen struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	err  error // how reading ended
	done chan struct{}
}

func watch(term *client.Terminal) *screen {
	s := &screen{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		p := make([]byte, 4096)
		for {
			n, err := term.Read(p)
			s.mu.Lock()
			s.buf.Write(p[:n])
			if err != nil {
				s.err = err
			}
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return s
}

// waitFor waits until the screen shows want, and returns the screen.
func (s *screen) waitFor(t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s.mu.Lock()
		text := s.buf.String()
		s.mu.Unlock()
		if strings.Contains(text, want) {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q; it shows %q", want, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// end waits for reading to end and says how it ended.
func (s *screen) end(t *testing.T) error {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the terminal did not end")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// TestTerminal: typing reaches the shell and its output comes back; resize reaches the terminal;
// the command's exit code comes with the end.
func TestTerminal(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	sb := newSandbox(t, c, client.CreateSandboxParams{})

	t.Run("type, resize, exit", func(t *testing.T) {
		ctx := testContext(t)
		term, err := sb.Terminal(ctx, client.TerminalOptions{Rows: 24, Cols: 80})
		if err != nil {
			t.Fatalf("Terminal: %v", err)
		}
		defer term.Close()
		s := watch(term)

		if _, err := io.WriteString(term, "echo h''i\n"); err != nil {
			t.Fatal(err)
		}
		s.waitFor(t, "echo h''i")  // the terminal echoes what was typed
		s.waitFor(t, "\r\nhi\r\n") // and shows the output, with a PTY's line endings

		if _, err := io.WriteString(term, "stty size\n"); err != nil {
			t.Fatal(err)
		}
		s.waitFor(t, "24 80\r\n")
		if err := term.Resize(ctx, 40, 100); err != nil {
			t.Fatalf("Resize: %v", err)
		}
		if _, err := io.WriteString(term, "stty size\n"); err != nil {
			t.Fatal(err)
		}
		s.waitFor(t, "40 100\r\n")

		if code, ok := term.ExitCode(); ok {
			t.Errorf("ExitCode = %d, true while the shell runs", code)
		}
		if _, err := io.WriteString(term, "exit 7\n"); err != nil {
			t.Fatal(err)
		}
		if err := s.end(t); err != io.EOF {
			t.Errorf("Read ended with %v, want io.EOF", err)
		}
		if code, ok := term.ExitCode(); !ok || code != 7 {
			t.Errorf("ExitCode = %d, %v; want 7, true", code, ok)
		}
		if err := term.Close(); err != nil {
			t.Errorf("Close after the exit: %v", err)
		}
	})

	t.Run("command", func(t *testing.T) {
		term, err := sb.Terminal(testContext(t), client.TerminalOptions{Cmd: []string{"sh", "-c", "tty; exit 3"}})
		if err != nil {
			t.Fatalf("Terminal: %v", err)
		}
		defer term.Close()
		out, err := io.ReadAll(term)
		if err != nil {
			t.Fatalf("ReadAll: %v", err)
		}
		if !bytes.HasPrefix(out, []byte("/dev/pts/")) {
			t.Errorf("tty printed %q, want a pseudo-terminal", out)
		}
		if code, ok := term.ExitCode(); !ok || code != 3 {
			t.Errorf("ExitCode = %d, %v; want 3, true", code, ok)
		}
	})

	t.Run("close kills the command", func(t *testing.T) {
		ctx := testContext(t)
		term, err := sb.Terminal(ctx, client.TerminalOptions{Cmd: []string{"sh", "-c", "echo up; sleep 2; touch /tmp/term-survived"}})
		if err != nil {
			t.Fatalf("Terminal: %v", err)
		}
		s := watch(term)
		s.waitFor(t, "up")
		if err := term.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := s.end(t); err == nil || err == io.EOF {
			t.Errorf("Read after Close ended with %v, want an error that is not io.EOF", err)
		}
		if _, ok := term.ExitCode(); ok {
			t.Error("ExitCode ok after Close, want false: the command did not exit by itself")
		}
		time.Sleep(3 * time.Second)
		if res, err := sb.Exec(ctx, []string{"ls", "/tmp/term-survived"}); err != nil || res.ExitCode == 0 {
			t.Errorf("the command went on after Close (%+v, %v)", res, err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		_, err := c.Sandboxes.Connect("00000000-0000-4000-8000-000000000000").Terminal(testContext(t), client.TerminalOptions{})
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "not_found" || apiErr.RequestID == "" {
			t.Errorf("Terminal in an unknown sandbox: %v, want 404 not_found with a request id", err)
		}
		_, err = sb.Terminal(testContext(t), client.TerminalOptions{Rows: 5000})
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Field != "rows" {
			t.Errorf("Terminal with 5000 rows: %v, want 400 naming rows", err)
		}
	})
}
