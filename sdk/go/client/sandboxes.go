package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/sdk/go/api"
)

// CreateSandboxParams is what a new sandbox should be; every field is optional (nil: the service's
// default). It is the generated wire type, so every field the API knows is here.
type CreateSandboxParams = api.CreateSandbox

// CreateOption changes one Create call.
type CreateOption func(*createOptions)

type createOptions struct{ idempotencyKey string }

// WithIdempotencyKey sends key as the create's Idempotency-Key instead of a random one, so that a
// create repeated by a program that restarted still makes one sandbox (the service keeps keys for
// a day; the same key with a different request is 422 idempotency_key_reused).
func WithIdempotencyKey(key string) CreateOption {
	return func(o *createOptions) { o.idempotencyKey = key }
}

// SandboxService creates, finds and lists the caller's sandboxes.
type SandboxService struct{ c *Client }

// Create starts a sandbox and returns it once it runs. The request carries an Idempotency-Key (a
// random one unless WithIdempotencyKey says), so when it is retried after a lost answer the service
// returns the first sandbox instead of making a second.
func (s *SandboxService) Create(ctx context.Context, p CreateSandboxParams, opts ...CreateOption) (*Sandbox, error) {
	o := createOptions{idempotencyKey: uuid.NewString()}
	for _, opt := range opts {
		opt(&o)
	}
	r, err := s.c.API.CreateSandboxWithResponse(ctx, &api.CreateSandboxParams{IdempotencyKey: &o.idempotencyKey}, p)
	if err != nil {
		return nil, requestFailed("creating a sandbox", err)
	}
	if r.JSON201 == nil {
		return nil, responseError(r.HTTPResponse, r.Body)
	}
	return s.c.sandbox(*r.JSON201), nil
}

// Get reads one sandbox. An unknown id (or one that is not a UUID) is *Error with Code "not_found".
func (s *SandboxService) Get(ctx context.Context, id string) (*Sandbox, error) {
	sb := s.Connect(id)
	if err := sb.Refresh(ctx); err != nil {
		return nil, err
	}
	return sb, nil
}

// Connect is a handle on a sandbox whose id is known, without a request: its fields other than ID
// are empty until Refresh (or any call that returns the sandbox) fills them.
func (s *SandboxService) Connect(id string) *Sandbox {
	sb := &Sandbox{ID: id, c: s.c}
	sb.Files = &Files{sb: sb}
	return sb
}

// ListSandboxesOptions filters and bounds List.
type ListSandboxesOptions struct {
	// Status keeps only sandboxes in this state ("running", "paused", "stopped", ...); "" keeps all.
	Status string
	// Metadata keeps only sandboxes whose metadata has every one of these key = value pairs.
	Metadata map[string]string
	// Limit is the most sandboxes List yields in all; 0 is no limit (every page is walked).
	Limit int
	// PageSize is how many sandboxes each request asks for (1 to 100; 0: the service's default, 20).
	PageSize int
}

// List yields the caller's sandboxes, newest first, following next_cursor from page to page as
// the loop asks for more. An error ends the sequence: it is yielded once, with a nil sandbox.
func (s *SandboxService) List(ctx context.Context, opts ListSandboxesOptions) iter.Seq2[*Sandbox, error] {
	return func(yield func(*Sandbox, error) bool) {
		var cursor *string
		yielded := 0
		for {
			page, err := s.listPage(ctx, opts, cursor, yielded)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, w := range deref(page.Sandboxes) {
				if !yield(s.c.sandbox(w), nil) {
					return
				}
				yielded++
				if opts.Limit > 0 && yielded >= opts.Limit {
					return
				}
			}
			if page.NextCursor == nil || *page.NextCursor == "" {
				return
			}
			cursor = page.NextCursor
		}
	}
}

// listPage reads one page.
func (s *SandboxService) listPage(ctx context.Context, opts ListSandboxesOptions, cursor *string, yielded int) (*api.SandboxList, error) {
	params := &api.ListSandboxesParams{Cursor: cursor}
	if len(opts.Metadata) > 0 {
		params.Metadata = &opts.Metadata
	}
	if opts.Status != "" {
		st := api.SandboxStatus(opts.Status)
		params.Status = &st
	}
	size := opts.PageSize
	if opts.Limit > 0 && (size == 0 || size > opts.Limit-yielded) {
		size = min(opts.Limit-yielded, 100)
	}
	if size > 0 {
		params.Limit = &size
	}
	req, err := api.NewListSandboxesRequest(s.c.server(), params)
	if err != nil {
		return nil, fmt.Errorf("insien: building the list request: %w", err)
	}
	var page api.SandboxList
	if err := s.c.doJSON(ctx, req, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// Sandbox is one sandbox as the service last described it, and the handle to drive it. Its
// methods update it from the service's answers; it is not safe to call them concurrently on one
// *Sandbox (use one handle per goroutine, Connect makes more).
type Sandbox struct {
	ID     string
	Image  string
	Status string // "pending", "running", "paused", "stopping", "stopped", "failed" or "expired"
	// Start is "warm" (it claimed a running pool member) or "cold" (a container was created for it).
	Start string
	// EndReason says why a sandbox that ended did: "user_deleted", "expired", "process_exited", ...
	EndReason      string
	Command        []string
	EnvNames       []string // the names of its env; the values are never returned
	Metadata       map[string]string
	CPU            float64 // cores
	MemoryMB       int
	DiskMB         int // 0: no disk limit
	TimeoutSeconds int
	AutoExtend     bool
	CreatedAt      time.Time
	ExpiresAt      time.Time
	StartedAt      *time.Time
	PausedAt       *time.Time
	EndedAt        *time.Time
	// ExitCode is the main process's exit status when it ended by itself (or was OOM-killed).
	ExitCode *int
	// Raw is everything the API said, network, ports and volumes included.
	Raw api.Sandbox

	// Files reads and writes the sandbox's filesystem.
	Files *Files

	c *Client
}

// sandbox makes a handle from the wire form.
func (c *Client) sandbox(w api.Sandbox) *Sandbox {
	sb := &Sandbox{c: c}
	sb.Files = &Files{sb: sb}
	sb.set(w)
	return sb
}

// set replaces what sb knows with the service's description w, keeping the handle's identity.
func (sb *Sandbox) set(w api.Sandbox) {
	if w.Id != nil {
		sb.ID = w.Id.String()
	}
	sb.Image = deref(w.Image)
	sb.Status = string(deref(w.Status))
	sb.Start = string(deref(w.Start))
	sb.EndReason = deref(w.EndReason)
	sb.Command = deref(w.Command)
	sb.EnvNames = deref(w.EnvNames)
	sb.Metadata = deref(w.Metadata)
	sb.CPU = math.Round(float64(deref(w.Cpu))*1000) / 1000 // float32 on the wire; whole millicores
	sb.MemoryMB = deref(w.MemoryMb)
	sb.DiskMB = deref(w.DiskMb)
	sb.TimeoutSeconds = deref(w.TimeoutSeconds)
	sb.AutoExtend = deref(w.AutoExtend)
	sb.CreatedAt = deref(w.CreatedAt)
	sb.ExpiresAt = deref(w.ExpiresAt)
	sb.StartedAt, sb.PausedAt, sb.EndedAt = w.StartedAt, w.PausedAt, w.EndedAt
	sb.ExitCode = w.ExitCode
	sb.Raw = w
}

// uuid parses the handle's id; one that is not a UUID names no sandbox, which the service would
// answer 404 not_found, so that is the error (without a request, so without a request id).
func (sb *Sandbox) uuid() (uuid.UUID, error) {
	id, err := uuid.Parse(sb.ID)
	if err != nil {
		return uuid.Nil, &Error{StatusCode: http.StatusNotFound, Code: "not_found",
			Message: fmt.Sprintf("sandbox not found: %q is not a sandbox id (no request was sent)", sb.ID)}
	}
	return id, nil
}

// Refresh reads the sandbox again into sb.
func (sb *Sandbox) Refresh(ctx context.Context) error {
	id, err := sb.uuid()
	if err != nil {
		return err
	}
	r, err := sb.c.API.GetSandboxWithResponse(ctx, id)
	if err != nil {
		return requestFailed("reading sandbox "+sb.ID, err)
	}
	return sb.update(r.HTTPResponse, r.Body, r.JSON200)
}

// Pause freezes every process of the sandbox; memory and files survive. Pausing a paused sandbox
// is not an error. A runtime that cannot pause answers 409 not_supported_by_runtime.
func (sb *Sandbox) Pause(ctx context.Context) error {
	id, err := sb.uuid()
	if err != nil {
		return err
	}
	r, err := sb.c.API.PauseSandboxWithResponse(ctx, id)
	if err != nil {
		return requestFailed("pausing sandbox "+sb.ID, err)
	}
	return sb.update(r.HTTPResponse, r.Body, r.JSON200)
}

// Resume thaws a paused sandbox; resuming a running one is not an error.
func (sb *Sandbox) Resume(ctx context.Context) error {
	id, err := sb.uuid()
	if err != nil {
		return err
	}
	r, err := sb.c.API.ResumeSandboxWithResponse(ctx, id)
	if err != nil {
		return requestFailed("resuming sandbox "+sb.ID, err)
	}
	return sb.update(r.HTTPResponse, r.Body, r.JSON200)
}

// SetTimeout makes the sandbox expire d from now (rounded up to whole seconds, at least one),
// bounded by the service's maximum lifetime counted from its creation.
func (sb *Sandbox) SetTimeout(ctx context.Context, d time.Duration) error {
	id, err := sb.uuid()
	if err != nil {
		return err
	}
	secs := max(int(math.Ceil(d.Seconds())), 1)
	r, err := sb.c.API.SetSandboxTimeoutWithResponse(ctx, id, api.SetTimeoutRequest{TimeoutSeconds: secs})
	if err != nil {
		return requestFailed("setting the timeout of sandbox "+sb.ID, err)
	}
	return sb.update(r.HTTPResponse, r.Body, r.JSON200)
}

// Keepalive pushes the sandbox's expiry its own timeout from now.
func (sb *Sandbox) Keepalive(ctx context.Context) error {
	id, err := sb.uuid()
	if err != nil {
		return err
	}
	r, err := sb.c.API.KeepSandboxAliveWithResponse(ctx, id)
	if err != nil {
		return requestFailed("keeping sandbox "+sb.ID+" alive", err)
	}
	return sb.update(r.HTTPResponse, r.Body, r.JSON200)
}

// Delete stops and removes the sandbox. Deleting one that already ended is not an error; the
// service answers no body, so sb keeps its last known fields.
func (sb *Sandbox) Delete(ctx context.Context) error {
	id, err := sb.uuid()
	if err != nil {
		return err
	}
	r, err := sb.c.API.DeleteSandboxWithResponse(ctx, id)
	if err != nil {
		return requestFailed("deleting sandbox "+sb.ID, err)
	}
	if r.StatusCode() != http.StatusNoContent {
		return responseError(r.HTTPResponse, r.Body)
	}
	return nil
}

// update applies an answer that should carry the sandbox.
func (sb *Sandbox) update(resp *http.Response, body []byte, w *api.Sandbox) error {
	if w == nil {
		return responseError(resp, body)
	}
	sb.set(*w)
	return nil
}

// server is the base URL as the generated request builders want it.
func (c *Client) server() string { return c.baseURL + "/" }

// doJSON sends req and decodes a 2xx JSON answer into out.
func (c *Client) doJSON(ctx context.Context, req *http.Request, out any) error {
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("insien: reading the answer to %s %s: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// deref is *p, or the zero value for nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
