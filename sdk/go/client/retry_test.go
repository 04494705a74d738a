package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/sdk/go/client"
)

// fault is what faultProxy does to one request instead of forwarding it.
type fault struct {
	status       int    // answer this status in the service's error shape
	retryAfter   string // with this Retry-After
	forwardFirst bool   // forward it, then answer status anyway: the answer was lost on the way
	hangUp       bool   // close the connection without an answer
}

// seenRequest is a request as faultProxy received it.
type seenRequest struct {
	method, path, idempotencyKey string
	body                         []byte
	at                           time.Time
	forwardedAnswer              []byte // what the service said to a forwardFirst request
}

// faultProxy stands between the SDK and the real service and injects faults: the next requests
// for path get the queued faults, one each, then are forwarded.
type faultProxy struct {
	t      *testing.T
	srv    *httptest.Server
	target *url.URL
	mu     sync.Mutex
	path   string
	faults []fault
	seen   []seenRequest
}

func newFaultProxy(t *testing.T) *faultProxy {
	target, err := url.Parse(os.Getenv(client.EnvAPIURL))
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, target: target}
	forward := httputil.NewSingleHostReverseProxy(target)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		seen := seenRequest{method: r.Method, path: r.URL.Path, idempotencyKey: r.Header.Get("Idempotency-Key"), body: body, at: time.Now()}
		p.mu.Lock()
		var f *fault
		if r.URL.Path == p.path && len(p.faults) > 0 {
			f = &p.faults[0]
			p.faults = p.faults[1:]
		}
		idx := len(p.seen)
		p.seen = append(p.seen, seen)
		p.mu.Unlock()
		switch {
		case f == nil:
			forward.ServeHTTP(w, r)
		case f.hangUp:
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			if f.forwardFirst {
				rec := httptest.NewRecorder()
				forward.ServeHTTP(rec, r.Clone(context.Background()))
				p.mu.Lock()
				p.seen[idx].forwardedAnswer = rec.Body.Bytes()
				p.mu.Unlock()
			}
			if f.retryAfter != "" {
				w.Header().Set("Retry-After", f.retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Request-ID", "injected")
			w.WriteHeader(f.status)
			_, _ = io.WriteString(w, `{"error":{"code":"injected","message":"a fault the test injected","request_id":"injected"}}`)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// inject queues faults for the next requests to path and forgets what was seen.
func (p *faultProxy) inject(path string, faults ...fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.path, p.faults, p.seen = path, faults, nil
}

// requests are the requests seen to the faulted path since inject.
func (p *faultProxy) requests() []seenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []seenRequest
	for _, s := range p.seen {
		if s.path == p.path {
			out = append(out, s)
		}
	}
	return out
}

// TestCreateRetryIsIdempotent: a create whose answer is lost (the service made the sandbox, the
// client saw 503) is sent again with the same Idempotency-Key and returns that same sandbox; there
// is one sandbox, not two.
func TestCreateRetryIsIdempotent(t *testing.T) {
	t.Parallel()
	proxy := newFaultProxy(t)
	c := newClient(t, client.WithBaseURL(proxy.srv.URL))
	tag := map[string]string{"retry-test": uuid.NewString()}

	proxy.inject("/api/sandboxes", fault{status: http.StatusServiceUnavailable, forwardFirst: true})
	sb := newSandbox(t, c, client.CreateSandboxParams{Metadata: &tag})

	seen := proxy.requests()
	if len(seen) != 2 {
		t.Fatalf("%d create requests, want 2 (the lost one and its retry)", len(seen))
	}
	if seen[0].idempotencyKey == "" || seen[0].idempotencyKey != seen[1].idempotencyKey {
		t.Errorf("Idempotency-Keys %q then %q: want one key, sent twice", seen[0].idempotencyKey, seen[1].idempotencyKey)
	}
	if !bytes.Equal(seen[0].body, seen[1].body) {
		t.Errorf("bodies differ: %s then %s", seen[0].body, seen[1].body)
	}
	if !strings.Contains(string(seen[0].forwardedAnswer), sb.ID) {
		t.Errorf("the lost answer %s is not sandbox %s", seen[0].forwardedAnswer, sb.ID)
	}
	n := 0
	for _, err := range c.Sandboxes.List(testContext(t), client.ListSandboxesOptions{Metadata: tag}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("%d sandboxes made, want 1", n)
	}

	// A second Create is another sandbox: another key.
	proxy.inject("/api/sandboxes")
	newSandbox(t, c, client.CreateSandboxParams{Metadata: &tag})
	if again := proxy.requests(); len(again) != 1 || again[0].idempotencyKey == seen[0].idempotencyKey {
		t.Errorf("the next create sent key %q, want a new one", again[0].idempotencyKey)
	}
}

// TestRetryPolicy: which requests are sent again, after which answers, and how long it waits.
func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	proxy := newFaultProxy(t)
	direct := newClient(t)
	sb := newSandbox(t, direct, client.CreateSandboxParams{})
	sbPath := "/api/sandboxes/" + sb.ID
	unavailable := fault{status: http.StatusServiceUnavailable}
	gone := uuid.NewString()

	type outcome struct {
		attempts   int
		wantStatus int // of the *client.Error returned; 0: success
	}
	tests := []struct {
		name    string
		retries int // -1: the default
		path    string
		faults  []fault
		call    func(ctx context.Context, c *client.Client) error
		want    outcome
		minWait time.Duration
	}{
		{name: "get after two 503s", retries: -1, path: sbPath, faults: []fault{unavailable, unavailable},
			call: getSandbox(sb.ID), want: outcome{attempts: 3}, minWait: 250 * time.Millisecond},
		{name: "get after 502 and 504", retries: -1, path: sbPath, faults: []fault{{status: 502}, {status: 504}},
			call: getSandbox(sb.ID), want: outcome{attempts: 3}},
		// Two: net/http itself sends an idempotent request again, once, when a reused connection
		// closes before answering; the second hang-up reaches the SDK's policy.
		{name: "get after hang-ups", retries: -1, path: sbPath, faults: []fault{{hangUp: true}, {hangUp: true}},
			call: getSandbox(sb.ID), want: outcome{attempts: 3}, minWait: 125 * time.Millisecond},
		{name: "429 waits Retry-After", retries: -1, path: sbPath, faults: []fault{{status: 429, retryAfter: "1"}},
			call: getSandbox(sb.ID), want: outcome{attempts: 2}, minWait: time.Second},
		{name: "gives up after its retries", retries: 2, path: sbPath, faults: []fault{unavailable, unavailable, unavailable, unavailable},
			call: getSandbox(sb.ID), want: outcome{attempts: 3, wantStatus: 503}},
		{name: "retries off", retries: 0, path: sbPath, faults: []fault{unavailable},
			call: getSandbox(sb.ID), want: outcome{attempts: 1, wantStatus: 503}},
		{name: "500 is not retried", retries: -1, path: sbPath, faults: []fault{{status: 500}},
			call: getSandbox(sb.ID), want: outcome{attempts: 1, wantStatus: 500}},
		{name: "exec is sent once", retries: -1, path: sbPath + "/exec", faults: []fault{unavailable},
			call: func(ctx context.Context, c *client.Client) error {
				_, err := c.Sandboxes.Connect(sb.ID).Exec(ctx, []string{"true"})
				return err
			}, want: outcome{attempts: 1, wantStatus: 503}},
		{name: "pause is sent once", retries: -1, path: sbPath + "/pause", faults: []fault{unavailable},
			call: func(ctx context.Context, c *client.Client) error {
				return c.Sandboxes.Connect(sb.ID).Pause(ctx)
			}, want: outcome{attempts: 1, wantStatus: 503}},
		{name: "delete is retried", retries: -1, path: "/api/sandboxes/" + gone, faults: []fault{unavailable},
			call: func(ctx context.Context, c *client.Client) error {
				return c.Sandboxes.Connect(gone).Delete(ctx)
			}, want: outcome{attempts: 2, wantStatus: 404}},
		{name: "file write from a rewindable reader is retried", retries: -1, path: sbPath + "/files", faults: []fault{unavailable},
			call: func(ctx context.Context, c *client.Client) error {
				_, err := c.Sandboxes.Connect(sb.ID).Files.Write(ctx, "/tmp/retried", strings.NewReader("same body"))
				return err
			}, want: outcome{attempts: 2}},
		{name: "file write from a stream is sent once", retries: -1, path: sbPath + "/files", faults: []fault{unavailable},
			call: func(ctx context.Context, c *client.Client) error {
				_, err := c.Sandboxes.Connect(sb.ID).Files.Write(ctx, "/tmp/once", io.MultiReader(strings.NewReader("streamed")))
				return err
			}, want: outcome{attempts: 1, wantStatus: 503}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []client.Option
			opts = append(opts, client.WithBaseURL(proxy.srv.URL))
			if tt.retries >= 0 {
				opts = append(opts, client.WithRetries(tt.retries))
			}
			c := newClient(t, opts...)
			proxy.inject(tt.path, tt.faults...)
			start := time.Now()
			err := tt.call(testContext(t), c)
			elapsed := time.Since(start)
			if tt.want.wantStatus == 0 && err != nil {
				t.Fatalf("error %v, want success", err)
			}
			if tt.want.wantStatus != 0 {
				var apiErr *client.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.want.wantStatus {
					t.Fatalf("error %v, want *client.Error %d", err, tt.want.wantStatus)
				}
			}
			seen := proxy.requests()
			if tt.want.attempts > 0 && len(seen) != tt.want.attempts {
				t.Errorf("%d attempts, want %d", len(seen), tt.want.attempts)
			}
			for i := 1; i < len(seen); i++ {
				if !bytes.Equal(seen[i].body, seen[0].body) {
					t.Errorf("attempt %d sent %q, the first %q", i+1, seen[i].body, seen[0].body)
				}
			}
			if elapsed < tt.minWait {
				t.Errorf("answered after %v, want at least %v of backoff", elapsed, tt.minWait)
			}
		})
	}

	t.Run("context ends the wait", func(t *testing.T) {
		c := newClient(t, client.WithBaseURL(proxy.srv.URL))
		proxy.inject(sbPath, fault{status: 429, retryAfter: "30"})
		ctx, cancel := context.WithTimeout(testContext(t), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Sandboxes.Get(ctx, sb.ID)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("Get = %v after %v, want context.DeadlineExceeded at once", err, time.Since(start))
		}
	})
}

// getSandbox is a call of Sandboxes.Get, for the retry table.
func getSandbox(id string) func(context.Context, *client.Client) error {
	return func(ctx context.Context, c *client.Client) error {
		_, err := c.Sandboxes.Get(ctx, id)
		return err
	}
}
