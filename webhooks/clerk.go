// Package webhooks receives Clerk's webhook deliveries: svix signature, timestamp tolerance and
// replay protection, then hands the event to the user service.
package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	svix "github.com/svix/svix-webhooks/go"
	"go.uber.org/fx"

	"github.com/insien/orchestrator/apierror"
	"github.com/insien/orchestrator/config"
	"github.com/insien/orchestrator/users"
)

// Module provides the Clerk webhook receiver.
var Module = fx.Module("webhooks", fx.Provide(NewClerk))

// Clerk verifies and applies Clerk webhook deliveries.
type Clerk struct {
	webhook   *svix.Webhook // nil when no secret is configured
	tolerance time.Duration
	rdb       *redis.Client
	users     *users.Service
}

// NewClerk builds the receiver; without CLERK_WEBHOOK_SECRET every delivery is refused.
func NewClerk(cfg config.Clerk, rdb *redis.Client, users *users.Service) (*Clerk, error) {
	c := &Clerk{tolerance: cfg.WebhookTolerance, rdb: rdb, users: users}
	if secret := cfg.WebhookSecret.Reveal(); secret != "" {
		wh, err := svix.NewWebhook(secret)
		if err != nil {
			return nil, &config.Error{Key: "clerk.webhook_secret", Reason: "not a svix signing secret (whsec_...)"}
		}
		c.webhook = wh
	}
	return c, nil
}

// Receive verifies a delivery and applies it once. A delivery whose processing fails may be
// retried by svix with the same id, so the id is only kept once the event is applied.
func (c *Clerk) Receive(ctx context.Context, payload []byte, headers http.Header) error {
	if c.webhook == nil {
		return apierror.Unavailable("webhooks_not_configured", "Clerk webhooks are not configured on this server")
	}
	id, ts := headers.Get("svix-id"), headers.Get("svix-timestamp")
	if id == "" || ts == "" || headers.Get("svix-signature") == "" {
		return apierror.BadRequest("missing_signature_headers", "svix-id, svix-timestamp and svix-signature headers are required")
	}
	seconds, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return apierror.BadRequest("invalid_signature_headers", "svix-timestamp must be a Unix time in seconds")
	}
	if err := c.webhook.VerifyIgnoringTimestamp(payload, headers); err != nil {
		return apierror.Unauthorized("invalid_signature", "the webhook signature does not match")
	}
	if age := time.Since(time.Unix(seconds, 0)); age > c.tolerance || age < -c.tolerance {
		return apierror.Unauthorized("stale_webhook", "the webhook timestamp is outside the %s tolerance", c.tolerance)
	}
	var ev users.Event
	if err := json.Unmarshal(payload, &ev); err != nil || ev.Type == "" {
		return apierror.BadRequest("invalid_payload", "the webhook body is not a Clerk event")
	}
	marker := "webhook:svix:" + id
	// Remember the id a little longer than the tolerance: past that, the timestamp check refuses it.
	fresh, err := c.rdb.SetNX(ctx, marker, 1, 2*c.tolerance).Result()
	if err != nil {
		return apierror.Unavailable("webhooks_unavailable", "cannot record the delivery right now; retry later").WithCause(err)
	}
	if !fresh {
		return apierror.BadRequest("webhook_replayed", "this delivery (svix-id %s) was already received", id)
	}
	if err := c.users.Apply(ctx, ev); err != nil {
		forgetCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		return errors.Join(err, c.rdb.Del(forgetCtx, marker).Err())
	}
	return nil
}
