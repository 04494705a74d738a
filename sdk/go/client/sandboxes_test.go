package client_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/sdk/go/client"
)

// TestCreate: the sandbox comes back running, with what was asked, in plain fields.
func TestCreate(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	sb := newSandbox(t, c, client.CreateSandboxParams{
		Cpu:            ptr(float32(0.5)),
		MemoryMb:       ptr(96),
		TimeoutSeconds: ptr(120),
		Env:            &map[string]string{"SECRET": "x"},
		Metadata:       &map[string]string{"test": "create"},
		Command:        &[]string{"sleep", "3600"},
	})
	if _, err := uuid.Parse(sb.ID); err != nil {
		t.Errorf("ID %q: %v", sb.ID, err)
	}
	if sb.Status != "running" || sb.CPU != 0.5 || sb.MemoryMB != 96 || sb.TimeoutSeconds != 120 ||
		!slices.Equal(sb.EnvNames, []string{"SECRET"}) || sb.Metadata["test"] != "create" ||
		!slices.Equal(sb.Command, []string{"sleep", "3600"}) || sb.Image == "" || sb.Start == "" {
		t.Errorf("created %+v", sb)
	}
	if sb.CreatedAt.IsZero() || sb.StartedAt == nil || sb.ExpiresAt.Sub(sb.CreatedAt) < 110*time.Second {
		t.Errorf("times: created %v started %v expires %v", sb.CreatedAt, sb.StartedAt, sb.ExpiresAt)
	}
	if sb.Raw.Id == nil || sb.Raw.Id.String() != sb.ID {
		t.Errorf("Raw = %+v, want the wire form", sb.Raw)
	}

	got, err := c.Sandboxes.Get(testContext(t), sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != sb.ID || got.Status != "running" || got.MemoryMB != 96 {
		t.Errorf("Get = %+v", got)
	}
}

// TestLifecycle walks a sandbox through pause, resume, a new timeout, keepalive and delete; each
// call updates the handle from the service's answer.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	sb := newSandbox(t, c, client.CreateSandboxParams{TimeoutSeconds: ptr(300)})
	ctx := testContext(t)

	if err := sb.Pause(ctx); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if sb.Status != "paused" || sb.PausedAt == nil {
		t.Errorf("after Pause: status %s, paused at %v", sb.Status, sb.PausedAt)
	}
	if err := sb.Pause(ctx); err != nil {
		t.Errorf("Pause again: %v, want none (idempotent)", err)
	}
	_, err := sb.Exec(ctx, []string{"true"})
	checkAPIError(t, "Exec in a paused sandbox", err, http.StatusConflict, "sandbox_not_running", "")

	if err := sb.Resume(ctx); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if sb.Status != "running" || sb.PausedAt != nil {
		t.Errorf("after Resume: status %s, paused at %v", sb.Status, sb.PausedAt)
	}
	if res, err := sb.Exec(ctx, []string{"true"}); err != nil || res.ExitCode != 0 {
		t.Errorf("Exec after Resume = %+v, %v", res, err)
	}

	before := time.Now()
	if err := sb.SetTimeout(ctx, 20*time.Minute); err != nil {
		t.Fatalf("SetTimeout: %v", err)
	}
	if d := sb.ExpiresAt.Sub(before); d < 19*time.Minute || d > 21*time.Minute {
		t.Errorf("after SetTimeout(20m): expires in %v", d)
	}
	if err := sb.Keepalive(ctx); err != nil {
		t.Fatalf("Keepalive: %v", err)
	}
	if d := sb.ExpiresAt.Sub(time.Now()); d > 6*time.Minute {
		t.Errorf("after Keepalive: expires in %v, want about its own 300 s timeout", d)
	}

	other := c.Sandboxes.Connect(sb.ID)
	if other.Status != "" {
		t.Errorf("Connect filled fields: %+v", other)
	}
	if err := other.Refresh(ctx); err != nil || other.Status != "running" || other.TimeoutSeconds != 300 {
		t.Errorf("Refresh = %v, status %s timeout %d", err, other.Status, other.TimeoutSeconds)
	}

	if err := sb.Delete(ctx); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := sb.Delete(ctx); err != nil {
		t.Errorf("Delete again: %v, want none (idempotent)", err)
	}
	if err := sb.Refresh(ctx); err != nil {
		t.Fatalf("Refresh after Delete: %v", err)
	}
	if sb.Status != "stopped" || sb.EndedAt == nil || sb.EndReason == "" {
		t.Errorf("after Delete: status %s, ended %v, reason %q", sb.Status, sb.EndedAt, sb.EndReason)
	}
}

// countingTransport counts the requests that go out.
type countingTransport struct{ n atomic.Int32 }

func (ct *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ct.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// TestList: pages are followed through next_cursor, filters reach the service, and Limit bounds
// what is yielded (and asked for).
func TestList(t *testing.T) {
	t.Parallel()
	ct := &countingTransport{}
	c := newClient(t, client.WithHTTPClient(&http.Client{Transport: ct}))
	tag := map[string]string{"list-test": uuid.NewString()}
	var created []string
	for range 3 {
		created = append(created, newSandbox(t, c, client.CreateSandboxParams{Metadata: &tag}).ID)
	}
	newestFirst := slices.Clone(created)
	slices.Reverse(newestFirst)
	paused := c.Sandboxes.Connect(created[1])
	if err := paused.Pause(testContext(t)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name         string
		opts         client.ListSandboxesOptions
		want         []string
		wantRequests int32
	}{
		{name: "one per page", opts: client.ListSandboxesOptions{PageSize: 1}, want: newestFirst, wantRequests: 4}, // the last page is empty or says no more
		{name: "two per page", opts: client.ListSandboxesOptions{PageSize: 2}, want: newestFirst, wantRequests: 2},
		{name: "default page", opts: client.ListSandboxesOptions{}, want: newestFirst, wantRequests: 1},
		{name: "limit", opts: client.ListSandboxesOptions{Limit: 2}, want: newestFirst[:2], wantRequests: 1},
		{name: "limit over pages", opts: client.ListSandboxesOptions{Limit: 2, PageSize: 1}, want: newestFirst[:2], wantRequests: 2},
		{name: "status", opts: client.ListSandboxesOptions{Status: "paused"}, want: []string{created[1]}, wantRequests: 1},
		{name: "no match", opts: client.ListSandboxesOptions{Metadata: map[string]string{"list-test": "nothing"}}, want: nil, wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Metadata == nil {
				tt.opts.Metadata = tag
			}
			before := ct.n.Load()
			var got []string
			for sb, err := range c.Sandboxes.List(testContext(t), tt.opts) {
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				if sb.Metadata["list-test"] != tag["list-test"] {
					t.Errorf("listed %s with metadata %v", sb.ID, sb.Metadata)
				}
				got = append(got, sb.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("List = %v, want %v", got, tt.want)
			}
			if n := ct.n.Load() - before; n > tt.wantRequests || (tt.wantRequests > 1 && n < tt.wantRequests-1) {
				t.Errorf("%d requests, want %d", n, tt.wantRequests)
			}
		})
	}

	t.Run("break stops paging", func(t *testing.T) {
		before := ct.n.Load()
		for range c.Sandboxes.List(testContext(t), client.ListSandboxesOptions{Metadata: tag, PageSize: 1}) {
			break
		}
		if n := ct.n.Load() - before; n != 1 {
			t.Errorf("%d requests after breaking on the first sandbox, want 1", n)
		}
	})
}

// TestErrors: every answer outside 2xx is *client.Error with the service's code and request id.
func TestErrors(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := newClient(t)
	unknown := uuid.NewString()
	tests := []struct {
		name       string
		call       func() error
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{name: "unknown sandbox", wantStatus: 404, wantCode: "not_found", call: func() error {
			_, err := c.Sandboxes.Get(ctx, unknown)
			return err
		}},
		{name: "delete unknown sandbox", wantStatus: 404, wantCode: "not_found", call: func() error {
			return c.Sandboxes.Connect(unknown).Delete(ctx)
		}},
		{name: "bad credential", wantStatus: 401, wantCode: "invalid_api_key", call: func() error {
			bad, err := client.New("isk_not_a_key")
			if err != nil {
				return err
			}
			_, err = bad.Sandboxes.Get(ctx, unknown)
			return err
		}},
		{name: "image not allowed", wantStatus: 400, wantCode: "validation_failed", wantField: "image", call: func() error {
			_, err := c.Sandboxes.Create(ctx, client.CreateSandboxParams{Image: ptr("alpine:latest")})
			return err
		}},
		{name: "keys need a session", wantStatus: 403, wantCode: "session_required", call: func() error {
			_, err := c.Keys.List(ctx)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAPIError(t, tt.name, tt.call(), tt.wantStatus, tt.wantCode, tt.wantField)
		})
	}

	t.Run("not a uuid", func(t *testing.T) {
		_, err := c.Sandboxes.Get(ctx, "not-a-uuid")
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "not_found" || !strings.Contains(apiErr.Message, "not-a-uuid") {
			t.Errorf("Get(not-a-uuid) = %v, want 404 not_found naming the id", err)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c.Sandboxes.Get(cctx, unknown)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Get with a cancelled context = %v, want context.Canceled", err)
		}
	})
}
