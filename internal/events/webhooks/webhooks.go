// Package webhooks sends a user's events to their endpoints, signed per the Standard Webhooks
// spec. The database fills the outbox (webhook_deliveries) in the statement that writes each
// event; the Worker here claims due deliveries on every replica and sends them with backoff, and
// the Service manages endpoints, test sends and manual retries for their owner.
package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/events"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/netguard"
	"github.com/insien/orchestrator/internal/platform/page"
	"github.com/insien/orchestrator/internal/sandbox/envcrypt"
	"github.com/insien/orchestrator/repositories"
)

// TestEventType is the type of the event a test send delivers; no endpoint subscribes to it.
const TestEventType = "webhook.test"

const (
	maxURLLength         = 2048
	maxDescriptionLength = 500
	secretPrefix         = "whsec_"
	secretBytes          = 24 // as svix's own secrets
)

// Service manages users' webhook endpoints and their deliveries.
type Service struct {
	rows      *repositories.Webhooks
	sealer    *envcrypt.Sealer
	cfg       config.Webhooks
	allowHTTP bool
}

// Params are the service's dependencies.
type Params struct {
	fx.In
	Webhooks *repositories.Webhooks
	Sealer   *envcrypt.Sealer
	Config   config.Webhooks
	App      config.App
}

// NewService builds the service; http:// endpoints are accepted in development mode or when
// webhooks.allow_http is set.
func NewService(p Params) *Service {
	return &Service{rows: p.Webhooks, sealer: p.Sealer, cfg: p.Config, allowHTTP: p.Config.AllowHTTP || p.App.Development()}
}

// secretContext binds a sealed secret to its endpoint: copied onto another row, it does not open.
func secretContext(endpointID uuid.UUID) []byte {
	return []byte("webhook-secret:" + endpointID.String())
}

// CreateInput is a new endpoint.
type CreateInput struct {
	URL         string
	Events      []string
	Description string
}

// Create stores a new endpoint for a user, within their limit, and returns it with its signing
// secret: the only time the secret is shown.
func (s *Service) Create(ctx context.Context, userID uuid.UUID, in CreateInput) (*repositories.WebhookEndpoint, string, error) {
	e := &repositories.WebhookEndpoint{ID: uuid.New(), UserID: userID, Description: in.Description}
	var err error
	if e.URL, err = s.checkURL(in.URL); err != nil {
		return nil, "", err
	}
	if e.Events, err = checkEvents(in.Events); err != nil {
		return nil, "", err
	}
	if err := checkDescription(in.Description); err != nil {
		return nil, "", err
	}
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", fmt.Errorf("making a webhook secret: %w", err)
	}
	secret := secretPrefix + base64.StdEncoding.EncodeToString(raw)
	if e.Secret, err = s.sealer.Seal([]byte(secret), secretContext(e.ID)); err != nil {
		return nil, "", fmt.Errorf("sealing a webhook secret: %w", err)
	}
	err = s.rows.InTx(ctx, func(ctx context.Context, rows *repositories.Webhooks) error {
		if err := rows.LockUser(ctx, userID); errors.Is(err, repositories.ErrNotFound) {
			return apierror.AccountDeleted()
		} else if err != nil {
			return err
		}
		n, err := rows.CountEndpoints(ctx, userID)
		if err != nil {
			return err
		}
		if n >= s.cfg.MaxPerUser {
			return apierror.TooManyRequests("quota_exceeded", "you have %d webhook endpoints, the maximum", n)
		}
		return rows.InsertEndpoint(ctx, e)
	})
	if err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

// checkURL accepts an absolute https URL (http too when allowed) whose host is a name or a
// public address; a name is checked again at every dial, against the address actually dialed.
func (s *Service) checkURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return "", apierror.Invalid("url", "url is required")
	case len(raw) > maxURLLength:
		return "", apierror.Invalid("url", "url must be at most %d characters", maxURLLength)
	case err != nil || u.Opaque != "" || u.Hostname() == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return "", apierror.Invalid("url", "url must be an absolute https URL, e.g. https://example.com/hooks")
	case u.Scheme == "http" && !s.allowHTTP:
		return "", apierror.Invalid("url", "url must use https (this server accepts http only in development or with webhooks.allow_http)")
	}
	if addr, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !s.cfg.AllowPrivateTargets {
		if kind := netguard.Classify(addr); kind != "" {
			return "", apierror.Invalid("url", "url's address %s is %s: webhooks are not sent to loopback, private, link-local or metadata addresses", addr, kind)
		}
	}
	return u.String(), nil
}

func checkEvents(types []string) ([]string, error) {
	if len(types) == 0 {
		return nil, apierror.Invalid("events", "events must list at least one event type, of %v", events.Types)
	}
	out := []string{}
	for _, t := range types {
		if !slices.Contains(events.Types, t) {
			return nil, apierror.Invalid("events", "unknown event type %q; one of %v", t, events.Types)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func checkDescription(d string) error {
	if utf8.RuneCountInString(d) > maxDescriptionLength || !utf8.ValidString(d) {
		return apierror.Invalid("description", "description must be at most %d characters of UTF-8", maxDescriptionLength)
	}
	return nil
}

// List returns a user's endpoints, oldest first.
func (s *Service) List(ctx context.Context, userID uuid.UUID) ([]repositories.WebhookEndpoint, error) {
	rows, err := s.rows.Endpoints(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("listing webhook endpoints: %w", err)
	}
	return rows, nil
}

// Get returns a user's endpoint: 404 for a malformed id or another user's endpoint.
func (s *Service) Get(ctx context.Context, userID uuid.UUID, id string) (*repositories.WebhookEndpoint, error) {
	return s.endpoint(ctx, s.rows, userID, id)
}

func (s *Service) endpoint(ctx context.Context, rows *repositories.Webhooks, userID uuid.UUID, id string) (*repositories.WebhookEndpoint, error) {
	eid, err := uuid.Parse(id)
	if err != nil {
		return nil, apierror.NotFound("webhook")
	}
	e, err := rows.Endpoint(ctx, userID, eid)
	if errors.Is(err, repositories.ErrNotFound) {
		return nil, apierror.NotFound("webhook")
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// UpdateInput changes an endpoint: nil fields stay as they are. Enabled false disables it (its
// pending deliveries fail); true enables it again and forgets its failures.
type UpdateInput struct {
	URL         *string
	Events      []string // nil: unchanged
	Description *string
	Enabled     *bool
}

// Update changes a user's endpoint.
func (s *Service) Update(ctx context.Context, userID uuid.UUID, id string, in UpdateInput) (*repositories.WebhookEndpoint, error) {
	var e *repositories.WebhookEndpoint
	err := s.rows.InTx(ctx, func(ctx context.Context, rows *repositories.Webhooks) error {
		var err error
		if e, err = s.endpoint(ctx, rows, userID, id); err != nil {
			return err
		}
		if in.URL != nil {
			if e.URL, err = s.checkURL(*in.URL); err != nil {
				return err
			}
		}
		if in.Events != nil {
			if e.Events, err = checkEvents(in.Events); err != nil {
				return err
			}
		}
		if in.Description != nil {
			if err := checkDescription(*in.Description); err != nil {
				return err
			}
			e.Description = *in.Description
		}
		if in.Enabled != nil && *in.Enabled {
			e.DisabledAt, e.DisabledReason, e.FailingSince = nil, nil, nil
		}
		if err := rows.UpdateEndpoint(ctx, e); err != nil {
			return err
		}
		if in.Enabled != nil && !*in.Enabled && e.DisabledAt == nil {
			if _, err := rows.DisableEndpoint(ctx, e.ID, "disabled by its owner"); err != nil {
				return err
			}
			e, err = rows.Endpoint(ctx, userID, e.ID)
			return err
		}
		return nil
	})
	if errors.Is(err, repositories.ErrNotFound) {
		return nil, apierror.NotFound("webhook") // deleted meanwhile
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Delete removes a user's endpoint and its deliveries.
func (s *Service) Delete(ctx context.Context, userID uuid.UUID, id string) error {
	eid, err := uuid.Parse(id)
	if err != nil {
		return apierror.NotFound("webhook")
	}
	if err := s.rows.DeleteEndpoint(ctx, userID, eid); errors.Is(err, repositories.ErrNotFound) {
		return apierror.NotFound("webhook")
	} else if err != nil {
		return fmt.Errorf("deleting a webhook endpoint: %w", err)
	}
	return nil
}

// Delivery is a delivery and its attempts, oldest first.
type Delivery struct {
	repositories.WebhookDelivery
	History []repositories.WebhookAttempt
}

func disabledError(e *repositories.WebhookEndpoint) error {
	return apierror.Conflict("webhook_disabled", "this webhook is disabled (%s); enable it with PATCH {\"enabled\": true} first", *e.DisabledReason)
}

// Test enqueues a webhook.test event for an enabled endpoint; the worker sends it like any other.
func (s *Service) Test(ctx context.Context, userID uuid.UUID, id string) (*Delivery, error) {
	e, err := s.Get(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if e.DisabledAt != nil {
		return nil, disabledError(e)
	}
	d := &repositories.WebhookDelivery{EndpointID: e.ID, UserID: userID, EventID: uuid.New(), EventType: TestEventType}
	d.Payload, err = json.Marshal(map[string]any{
		"type": TestEventType, "timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"),
		"data": map[string]any{"webhook_id": e.ID, "event_id": d.EventID, "message": "a test event sent by POST /api/webhooks/{id}/test"},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding a test event: %w", err)
	}
	if err := s.rows.InsertDelivery(ctx, d); err != nil {
		return nil, fmt.Errorf("enqueueing a test event: %w", err)
	}
	return &Delivery{WebhookDelivery: *d}, nil
}

// DeliveriesInput is a page of an endpoint's deliveries a caller may ask for.
type DeliveriesInput struct {
	Status string // empty, pending, succeeded or failed
	Limit  int
	Cursor string
}

// Deliveries returns a page of a user's endpoint's deliveries, newest first, with their attempts,
// and the cursor of the next page.
func (s *Service) Deliveries(ctx context.Context, userID uuid.UUID, id string, in DeliveriesInput) ([]Delivery, string, error) {
	p, err := page.Parse(in.Limit, in.Cursor)
	if err != nil {
		return nil, "", err
	}
	statuses := []string{repositories.DeliveryPending, repositories.DeliverySucceeded, repositories.DeliveryFailed}
	if in.Status != "" && !slices.Contains(statuses, in.Status) {
		return nil, "", apierror.Invalid("status", "status must be one of %v", statuses)
	}
	e, err := s.Get(ctx, userID, id)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.rows.Deliveries(ctx, repositories.DeliveryFilter{EndpointID: e.ID, Status: in.Status, Limit: p.Fetch(), After: p.After})
	if err != nil {
		return nil, "", fmt.Errorf("listing webhook deliveries: %w", err)
	}
	rows, next := page.Cut(p, rows, func(d repositories.WebhookDelivery) page.Cursor { return page.Cursor{At: d.CreatedAt, ID: d.ID} })
	ids := make([]uuid.UUID, len(rows))
	for i, d := range rows {
		ids[i] = d.ID
	}
	attempts, err := s.rows.Attempts(ctx, ids)
	if err != nil {
		return nil, "", fmt.Errorf("listing webhook attempts: %w", err)
	}
	out := make([]Delivery, len(rows))
	for i, d := range rows {
		out[i] = Delivery{WebhookDelivery: d, History: attempts[d.ID]}
	}
	return out, next, nil
}

// Retry makes one of a user's deliveries due now with a fresh attempt window, whatever its status.
func (s *Service) Retry(ctx context.Context, userID uuid.UUID, id, deliveryID string) (*Delivery, error) {
	e, err := s.Get(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	did, err := uuid.Parse(deliveryID)
	if err != nil {
		return nil, apierror.NotFound("delivery")
	}
	if e.DisabledAt != nil {
		return nil, disabledError(e)
	}
	d, err := s.rows.Requeue(ctx, e.ID, did)
	if errors.Is(err, repositories.ErrNotFound) {
		return nil, apierror.NotFound("delivery")
	}
	if err != nil {
		return nil, fmt.Errorf("retrying a webhook delivery: %w", err)
	}
	attempts, err := s.rows.Attempts(ctx, []uuid.UUID{d.ID})
	if err != nil {
		return nil, fmt.Errorf("listing webhook attempts: %w", err)
	}
	return &Delivery{WebhookDelivery: *d, History: attempts[d.ID]}, nil
}
