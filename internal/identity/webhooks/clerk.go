// Package webhooks receives Clerk's webhook deliveries: svix signature, timestamp tolerance and
// exactly-once application, then hands the event to the user service.
package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	svix "github.com/svix/svix-webhooks/go"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/identity/users"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
)

// Applier applies a verified Clerk event; users.Service is the one in the graph.
type Applier interface {
	Apply(ctx context.Context, ev users.Event) error
}

// Outcome says what became of a verified delivery; both are acknowledged with a 2xx.
type Outcome string

// The outcomes of Receive.
const (
	Applied   Outcome = "applied"   // applied now (an event type we ignore counts as applied)
	Duplicate Outcome = "duplicate" // its svix-id was applied before: acknowledged, not applied again
)

// maxIDLength bounds the svix-id, which names a Redis key and may appear in a message. Svix's
// ids ("msg_" + 27 characters) are far shorter.
const maxIDLength = 256

// Clerk verifies and applies Clerk webhook deliveries.
type Clerk struct {
	webhook   *svix.Webhook // nil when no secret is configured
	tolerance time.Duration
	rdb       *redis.Client
	applier   Applier
	log       *zap.Logger
}

// Params are the receiver's dependencies.
type Params struct {
	fx.In
	Applier Applier
	Clerk   config.Clerk
	Redis   *redis.Client
	Log     *zap.Logger
}

// NewClerk builds the receiver; without CLERK_WEBHOOK_SECRET every delivery is refused.
func NewClerk(p Params) (*Clerk, error) {
	c := &Clerk{tolerance: p.Clerk.WebhookTolerance, rdb: p.Redis, applier: p.Applier, log: p.Log.Named("webhooks")}
	if secret := p.Clerk.WebhookSecret.Reveal(); secret != "" {
		wh, err := svix.NewWebhook(secret)
		if err != nil {
			return nil, &config.Error{Key: "clerk.webhook_secret", Reason: "not a svix signing secret (whsec_...)"}
		}
		c.webhook = wh
	}
	return c, nil
}

// Delivery is what the svix headers say about a delivery, before its signature is checked.
type Delivery struct {
	ID        string    // svix-id: the same for every retry of one message
	Timestamp time.Time // svix-timestamp: when this attempt was signed
}

// ParseHeaders reads the svix headers: all three present, a sane id and a Unix timestamp.
func ParseHeaders(headers http.Header) (Delivery, error) {
	id, ts := headers.Get("svix-id"), headers.Get("svix-timestamp")
	if id == "" || ts == "" || headers.Get("svix-signature") == "" {
		return Delivery{}, apierror.BadRequest("missing_signature_headers", "svix-id, svix-timestamp and svix-signature headers are required")
	}
	if len(id) > maxIDLength || strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return Delivery{}, apierror.BadRequest("invalid_signature_headers", "svix-id must be at most %d printable ASCII characters", maxIDLength)
	}
	seconds, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || seconds < 0 || seconds > 1<<40 {
		return Delivery{}, apierror.BadRequest("invalid_signature_headers", "svix-timestamp must be a Unix time in seconds")
	}
	return Delivery{ID: id, Timestamp: time.Unix(seconds, 0)}, nil
}

// Receive verifies a delivery and applies it at most once per svix-id. Svix retries every
// non-2xx answer with the same id, so a delivery whose id was already applied is acknowledged
// (Duplicate) rather than refused: refusing it would turn one lost acknowledgement into retries
// and an endpoint marked failing. One still being applied elsewhere is 409 webhook_in_progress,
// which svix retries later; one whose application failed is released for its retry.
func (c *Clerk) Receive(ctx context.Context, payload []byte, headers http.Header) (Outcome, error) {
	if c.webhook == nil {
		return "", apierror.Unavailable("webhooks_not_configured", "Clerk webhooks are not configured on this server")
	}
	d, err := ParseHeaders(headers)
	if err != nil {
		return "", fmt.Errorf("read svix headers: %w", err)
	}
	if err := c.webhook.VerifyIgnoringTimestamp(payload, headers); err != nil {
		return "", apierror.Unauthorized("invalid_signature", "the webhook signature does not match")
	}
	if age := time.Since(d.Timestamp); age > c.tolerance || age < -c.tolerance {
		return "", apierror.Unauthorized("stale_webhook", "the webhook timestamp is outside the %s tolerance", c.tolerance)
	}
	var ev users.Event
	if err := json.Unmarshal(payload, &ev); err != nil || ev.Type == "" {
		return "", apierror.BadRequest("invalid_payload", "the webhook body is not a Clerk event")
	}

	m := c.marker(d.ID)
	claimed, err := m.claim(ctx)
	if err != nil {
		return "", apierror.Unavailable("webhooks_unavailable", "cannot record the delivery right now; retry later").WithCause(err)
	}
	if claimed.applied {
		return Duplicate, nil
	}
	if !claimed.ours {
		return "", apierror.Conflict("webhook_in_progress", "this delivery (svix-id %s) is being applied; retry later", d.ID)
	}
	// The claim is settled even if the client leaves: a claim left behind would hold back every
	// retry until it expires.
	settleCtx := context.WithoutCancel(ctx)
	if err := c.applier.Apply(ctx, ev); err != nil {
		if rerr := m.release(settleCtx); rerr != nil {
			c.log.Warn("releasing a failed webhook delivery", zap.String("svix_id", d.ID), zap.Error(rerr))
		}
		return "", fmt.Errorf("applying Clerk event %s: %w", ev.Type, err)
	}
	if err := m.markApplied(settleCtx); err != nil {
		// Applied, so the answer is 2xx; duplicates meet the claim (409) until it expires.
		c.log.Warn("recording an applied webhook delivery", zap.String("svix_id", d.ID), zap.Error(err))
	}
	return Applied, nil
}

// marker is the Redis record of one svix-id: "applying:<nonce>" while one request applies it,
// "applied" afterwards. Both last twice the tolerance: past that, the timestamp check refuses
// any copy of the delivery, and no application takes that long (requests are bounded by
// http.request_timeout), so a claim outlives the request that holds it.
type marker struct {
	rdb   *redis.Client
	key   string
	nonce string
	ttl   time.Duration
}

const appliedState = "applied"

func (c *Clerk) marker(id string) *marker {
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	return &marker{rdb: c.rdb, key: "webhook:svix:" + id, nonce: "applying:" + hex.EncodeToString(nonce), ttl: 2 * c.tolerance}
}

type claim struct {
	ours    bool // this request holds the claim and must apply the delivery
	applied bool // an earlier request applied it
}

// claimScript reads the marker and, when there is none, claims it, in one step so two copies of
// a delivery arriving together cannot both claim it.
var claimScript = redis.NewScript(`
local state = redis.call('GET', KEYS[1])
if state then return state end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`)

func (m *marker) claim(ctx context.Context) (claim, error) {
	state, err := claimScript.Run(ctx, m.rdb, []string{m.key}, m.nonce, m.ttl.Milliseconds()).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return claim{ours: true}, nil
	case err != nil:
		return claim{}, fmt.Errorf("claim svix-id: %w", err)
	}
	// Anything else is "applied" (markers left by earlier releases hold "1": read them so too).
	return claim{applied: !strings.HasPrefix(state, "applying:")}, nil
}

// settleScript replaces (or, without a new state, deletes) the marker only while this request
// still holds the claim.
var settleScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)

// release gives the delivery back to svix's next retry.
func (m *marker) release(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return settleScript.Run(ctx, m.rdb, []string{m.key}, m.nonce, "", 0).Err()
}

// markApplied records that the delivery took effect: its copies are acknowledged from now on.
func (m *marker) markApplied(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return settleScript.Run(ctx, m.rdb, []string{m.key}, m.nonce, appliedState, m.ttl.Milliseconds()).Err()
}
