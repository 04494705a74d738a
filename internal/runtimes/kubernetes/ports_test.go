package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/kubernetes"
)

// httpServer serves "hello" (and /big, the numbers 1 to 200000, one a line: 1.3 MB) on port 8080
// of the sandbox's loopback (and every other address), with busybox's httpd.
const httpServer = `mkdir -p /tmp/www && echo hello > /tmp/www/index.html && seq 1 200000 > /tmp/www/big &&
exec httpd -f -p 8080 -h /tmp/www`

// TestDialPort reaches an app in a sandbox that the NetworkPolicy isolates, through the API
// server's port forwarding; a port nothing listens on, a missing Pod and a stopped one are told
// apart.
func TestDialPort(t *testing.T) {
	c := newClusterTest(t)
	r := c.runtime(kubernetes.Options{}) // no AllowNetwork: the Pod is denied all ingress
	spec := c.spec()
	spec.Command = []string{"sh", "-c", httpServer}
	id := c.start(r, spec)
	waitListening(t, r, id, 8080)

	t.Run("GET", func(t *testing.T) {
		began := time.Now()
		conn, err := r.DialPort(c.ctx(), id, 8080)
		if err != nil {
			t.Fatalf("DialPort: %v", err)
		}
		defer conn.Close()
		t.Logf("DialPort took %s", time.Since(began))
		if body := mustGet(t, conn); body != "hello\n" {
			t.Errorf("GET / = %q, want %q", body, "hello\n")
		}
		if a := conn.RemoteAddr(); a == nil || !strings.Contains(a.String(), id+":8080") {
			t.Errorf("RemoteAddr = %v, want the Pod and port", a)
		}
		if conn.LocalAddr() == nil {
			t.Error("LocalAddr is nil")
		}
	})

	t.Run("large response", func(t *testing.T) {
		conn, err := r.DialPort(c.ctx(), id, 8080)
		if err != nil {
			t.Fatalf("DialPort: %v", err)
		}
		defer conn.Close()
		var want strings.Builder
		for i := 1; i <= 200000; i++ {
			fmt.Fprintf(&want, "%d\n", i)
		}
		body, err := get(conn, "/big")
		if err != nil {
			t.Fatal(err)
		}
		if body != want.String() {
			t.Errorf("GET /big: %d bytes, want %d (the same)", len(body), want.Len())
		}
	})

	t.Run("concurrent connections", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				conn, err := r.DialPort(c.ctx(), id, 8080)
				if err != nil {
					t.Errorf("DialPort: %v", err)
					return
				}
				defer conn.Close()
				if body, err := get(conn, "/"); err != nil || body != "hello\n" {
					t.Errorf("GET / = %q, %v", body, err)
				}
			})
		}
		wg.Wait()
	})

	t.Run("read deadline", func(t *testing.T) {
		conn, err := r.DialPort(c.ctx(), id, 8080)
		if err != nil {
			t.Fatalf("DialPort: %v", err)
		}
		defer conn.Close()
		// httpd waits for a request: the read times out, and the connection stays usable.
		if err := conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		_, err = conn.Read(make([]byte, 1))
		var netErr net.Error
		if !errors.As(err, &netErr) || !netErr.Timeout() {
			t.Fatalf("Read past the deadline: %v, want a timeout", err)
		}
		if took := time.Since(began); took > 2*time.Second {
			t.Errorf("the read timed out after %s", took)
		}
		if err := conn.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		if body := mustGet(t, conn); body != "hello\n" {
			t.Errorf("GET / after a timeout = %q", body)
		}
	})

	t.Run("Close ends a blocked Read", func(t *testing.T) {
		conn, err := r.DialPort(c.ctx(), id, 8080)
		if err != nil {
			t.Fatalf("DialPort: %v", err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := conn.Read(make([]byte, 1))
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		if err := conn.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end the Read")
		}
		if _, err := conn.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after Close: %v, want net.ErrClosed", err)
		}
	})

	t.Run("Close leaves no goroutine", func(t *testing.T) {
		// Warm the client up (its transports keep goroutines of their own), then count.
		conn, err := r.DialPort(c.ctx(), id, 8080)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		settle := func(limit int) int {
			n := runtime.NumGoroutine()
			for deadline := time.Now().Add(10 * time.Second); n > limit && time.Now().Before(deadline); n = runtime.NumGoroutine() {
				time.Sleep(50 * time.Millisecond)
			}
			return n
		}
		time.Sleep(500 * time.Millisecond)
		before := runtime.NumGoroutine()
		for range 5 {
			conn, err := r.DialPort(c.ctx(), id, 8080)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write([]byte("GET / HTTP/1.0\r\n")); err != nil { // a request left half-sent
				t.Fatal(err)
			}
			conn.Close()
			if _, err := r.DialPort(c.ctx(), id, 8081); !errors.Is(err, runtimes.ErrPortNotListening) {
				t.Fatal(err)
			}
		}
		if after := settle(before); after > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines before 10 dials, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
		}
	})

	t.Run("listening ports", func(t *testing.T) {
		ports, err := r.ListeningPorts(c.ctx(), id)
		if err != nil || fmt.Sprint(ports) != "[8080]" {
			t.Errorf("ListeningPorts = %v, %v; want [8080]", ports, err)
		}
	})

	t.Run("nothing listens", func(t *testing.T) {
		began := time.Now()
		conn, err := r.DialPort(c.ctx(), id, 8081)
		if !errors.Is(err, runtimes.ErrPortNotListening) {
			if conn != nil {
				conn.Close()
			}
			t.Fatalf("DialPort to a closed port: %v, want ErrPortNotListening", err)
		}
		t.Logf("refused after %s: %v", time.Since(began), err)
	})

	t.Run("over SPDY", func(t *testing.T) {
		conn, err := r.DialPortOverSPDY(c.ctx(), id, 8080)
		if err != nil {
			t.Fatalf("DialPort: %v", err)
		}
		defer conn.Close()
		if body := mustGet(t, conn); body != "hello\n" {
			t.Errorf("GET / = %q, want %q", body, "hello\n")
		}
		if _, err := r.DialPortOverSPDY(c.ctx(), id, 8081); !errors.Is(err, runtimes.ErrPortNotListening) {
			t.Errorf("DialPort to a closed port: %v, want ErrPortNotListening", err)
		}
	})

	t.Run("missing pod", func(t *testing.T) {
		_, err := r.DialPort(c.ctx(), "sbx-"+randomHex(6), 8080)
		if !errors.Is(err, runtimes.ErrNotFound) {
			t.Fatalf("DialPort to a missing Pod: %v, want ErrNotFound", err)
		}
	})

	t.Run("stopped", func(t *testing.T) {
		if err := r.Stop(c.ctx(), id, time.Second); err != nil {
			t.Fatal(err)
		}
		_, err := r.DialPort(c.ctx(), id, 8080)
		var notRunning *runtimes.NotRunningError
		if !errors.As(err, &notRunning) || notRunning.State != runtimes.StateExited {
			t.Fatalf("DialPort to a stopped Pod: %v, want a NotRunningError (exited)", err)
		}
	})
}

// waitListening waits until port in sandbox id accepts connections (httpd starts a moment after
// the Pod runs).
func waitListening(t *testing.T, r *kubernetes.Runtime, id string, port int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		conn, err := r.DialPort(ctx, id, port)
		if err == nil {
			conn.Close()
			return
		}
		if !errors.Is(err, runtimes.ErrPortNotListening) {
			t.Fatalf("DialPort while waiting for the server: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("nothing listens on port %d of %s: %v", port, id, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// get sends GET path over conn and returns the response's body; the server closes the connection
// after the response (HTTP/1.0).
func get(conn net.Conn, path string) (string, error) {
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return "", err
	}
	defer conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.0\r\nHost: sandbox\r\n\r\n"); err != nil {
		return "", fmt.Errorf("writing the request: %w", err)
	}
	resp, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("reading the response: %w (read %q)", err, resp)
	}
	head, body, ok := strings.Cut(string(resp), "\r\n\r\n")
	status, _, _ := strings.Cut(head, "\r\n")
	if !ok || !strings.HasPrefix(status, "HTTP/1.") || !strings.Contains(status, " 200 ") {
		return "", fmt.Errorf("not a 200 response: %q", resp)
	}
	return body, nil
}

// mustGet is get for the test's goroutine.
func mustGet(t *testing.T, conn net.Conn) string {
	t.Helper()
	body, err := get(conn, "/")
	if err != nil {
		t.Fatal(err)
	}
	return body
}
