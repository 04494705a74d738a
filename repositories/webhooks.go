package repositories

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/insien/orchestrator/internal/platform/page"
)

// WebhookEndpoint is a user's webhook endpoint. Secret is sealed: only the service opens it.
type WebhookEndpoint struct {
	bun.BaseModel  `bun:"table:webhook_endpoints"`
	ID             uuid.UUID  `bun:"id,pk,type:uuid"`
	UserID         uuid.UUID  `bun:"user_id,type:uuid"`
	URL            string     `bun:"url"`
	Events         []string   `bun:"events,array"`
	Description    string     `bun:"description"`
	Secret         []byte     `bun:"secret"`
	DisabledAt     *time.Time `bun:"disabled_at"`
	DisabledReason *string    `bun:"disabled_reason"`
	FailingSince   *time.Time `bun:"failing_since"`
	CreatedAt      time.Time  `bun:"created_at,nullzero,default:now()"`
	UpdatedAt      time.Time  `bun:"updated_at,nullzero,default:now()"`
}

// Delivery statuses: pending until an attempt succeeds or the attempt window closes.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is one event on its way to one endpoint (a row of the outbox). Rows are
// written by the database with the event (see the webhooks migration), or by a test send.
type WebhookDelivery struct {
	bun.BaseModel  `bun:"table:webhook_deliveries"`
	ID             uuid.UUID       `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	EndpointID     uuid.UUID       `bun:"endpoint_id,type:uuid"`
	UserID         uuid.UUID       `bun:"user_id,type:uuid"`
	EventID        uuid.UUID       `bun:"event_id,type:uuid"`
	EventType      string          `bun:"event_type"`
	Payload        json.RawMessage `bun:"payload,type:jsonb"`
	Status         string          `bun:"status,nullzero,default:'pending'"`
	Attempts       int             `bun:"attempts"`
	NextAttemptAt  time.Time       `bun:"next_attempt_at,nullzero,default:clock_timestamp()"`
	RetryFrom      time.Time       `bun:"retry_from,nullzero,default:clock_timestamp()"`
	LastStatusCode *int            `bun:"last_status_code"`
	LastError      *string         `bun:"last_error"`
	LastLatencyMS  *int            `bun:"last_latency_ms"`
	CreatedAt      time.Time       `bun:"created_at,nullzero,default:clock_timestamp()"`
	UpdatedAt      time.Time       `bun:"updated_at,nullzero,default:clock_timestamp()"`
}

// WebhookAttempt is one try at a delivery: the answer's status code (nil when there was none),
// how long it took and what went wrong (nil when it succeeded).
type WebhookAttempt struct {
	bun.BaseModel `bun:"table:webhook_attempts"`
	ID            uuid.UUID `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	DeliveryID    uuid.UUID `bun:"delivery_id,type:uuid"`
	AttemptedAt   time.Time `bun:"attempted_at"`
	StatusCode    *int      `bun:"status_code"`
	LatencyMS     int       `bun:"latency_ms"`
	Error         *string   `bun:"error"`
}

// ClaimedDelivery is a due delivery leased to one worker, with what sending it needs.
type ClaimedDelivery struct {
	WebhookDelivery `bun:",extend"`
	URL             string `bun:"url"`
	Secret          []byte `bun:"secret"`
}

// Webhooks reads and writes webhook endpoints and their deliveries.
type Webhooks struct{ db bun.IDB }

// NewWebhooks builds the repository over db.
func NewWebhooks(db *bun.DB) *Webhooks { return &Webhooks{db: db} }

// InTx runs fn with the repository bound to a transaction, committed when fn returns nil.
func (r *Webhooks) InTx(ctx context.Context, fn func(ctx context.Context, tx *Webhooks) error) error {
	return inTx(ctx, r.db, func(db bun.IDB) *Webhooks { return &Webhooks{db: db} }, "webhook transaction", fn)
}

// LockUser locks a live user's row until the transaction ends, so that two requests counting
// the user's endpoints cannot both pass the limit (ErrNotFound for a deleted user).
func (r *Webhooks) LockUser(ctx context.Context, userID uuid.UUID) error {
	if err := lockUser(ctx, r.db, userID); err != nil {
		return fmt.Errorf("lock the webhook's owner: %w", err)
	}
	return nil
}

// CountEndpoints is how many endpoints a user has.
func (r *Webhooks) CountEndpoints(ctx context.Context, userID uuid.UUID) (int, error) {
	n, err := r.db.NewSelect().Model((*WebhookEndpoint)(nil)).Where("user_id = ?", userID).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count webhook endpoints: %w", translate(err))
	}
	return int(n), nil
}

// InsertEndpoint stores a new endpoint and fills in the columns the database sets.
func (r *Webhooks) InsertEndpoint(ctx context.Context, e *WebhookEndpoint) error {
	if _, err := r.db.NewInsert().Model(e).Returning("*").Exec(ctx); err != nil {
		return fmt.Errorf("insert webhook endpoint: %w", translate(err))
	}
	return nil
}

// Endpoints lists a user's endpoints, oldest first.
func (r *Webhooks) Endpoints(ctx context.Context, userID uuid.UUID) ([]WebhookEndpoint, error) {
	var rows []WebhookEndpoint
	if err := r.db.NewSelect().Model(&rows).Where("user_id = ?", userID).Order("created_at", "id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", translate(err))
	}
	return rows, nil
}

// Endpoint returns a user's endpoint (ErrNotFound when it is not theirs).
func (r *Webhooks) Endpoint(ctx context.Context, userID, id uuid.UUID) (*WebhookEndpoint, error) {
	e := new(WebhookEndpoint)
	if err := r.db.NewSelect().Model(e).Where("id = ?", id).Where("user_id = ?", userID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find webhook endpoint: %w", translate(err))
	}
	return e, nil
}

// UpdateEndpoint writes an endpoint's editable columns and its state (ErrNotFound when it is gone).
func (r *Webhooks) UpdateEndpoint(ctx context.Context, e *WebhookEndpoint) error {
	res, err := r.db.NewUpdate().Model(e).
		Column("url", "events", "description", "disabled_at", "disabled_reason", "failing_since").
		Set("updated_at = now()").WherePK().Where("user_id = ?", e.UserID).Returning("*").Exec(ctx)
	if err != nil {
		return fmt.Errorf("update webhook endpoint: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("update webhook endpoint: %w", ErrNotFound)
	}
	return nil
}

// DeleteEndpoint removes a user's endpoint and, by cascade, its deliveries.
func (r *Webhooks) DeleteEndpoint(ctx context.Context, userID, id uuid.UUID) error {
	res, err := r.db.NewDelete().Model((*WebhookEndpoint)(nil)).Where("id = ?", id).Where("user_id = ?", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete webhook endpoint: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DisableEndpoint disables an enabled endpoint with a reason and fails its pending deliveries
// with it; it reports whether the endpoint was enabled.
func (r *Webhooks) DisableEndpoint(ctx context.Context, id uuid.UUID, reason string) (bool, error) {
	res, err := r.db.NewUpdate().Model((*WebhookEndpoint)(nil)).Set("disabled_at = now()").Set("disabled_reason = ?", reason).
		Set("updated_at = now()").Where("id = ?", id).Where("disabled_at IS NULL").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("disable webhook endpoint: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	_, err = r.db.NewUpdate().Model((*WebhookDelivery)(nil)).Set("status = ?", DeliveryFailed).
		Set("last_error = ?", "not sent: the endpoint was disabled ("+reason+")").Set("updated_at = clock_timestamp()").
		Where("endpoint_id = ?", id).Where("status = ?", DeliveryPending).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("fail a disabled endpoint's deliveries: %w", translate(err))
	}
	return true, nil
}

// EndpointSucceeded clears an endpoint's failing streak.
func (r *Webhooks) EndpointSucceeded(ctx context.Context, id uuid.UUID) error {
	_, err := r.db.NewUpdate().Model((*WebhookEndpoint)(nil)).Set("failing_since = NULL").
		Where("id = ?", id).Where("failing_since IS NOT NULL").Exec(ctx)
	if err != nil {
		return fmt.Errorf("clear webhook endpoint's failures: %w", translate(err))
	}
	return nil
}

// EndpointFailed starts an enabled endpoint's failing streak at at unless one runs, and returns
// when the streak began (ErrNotFound when the endpoint is gone or disabled).
func (r *Webhooks) EndpointFailed(ctx context.Context, id uuid.UUID, at time.Time) (time.Time, error) {
	var since time.Time
	err := r.db.NewUpdate().Model((*WebhookEndpoint)(nil)).Set("failing_since = coalesce(failing_since, ?)", at).
		Where("id = ?", id).Where("disabled_at IS NULL").Returning("failing_since").Scan(ctx, &since)
	if err != nil {
		return time.Time{}, fmt.Errorf("record webhook endpoint's failure: %w", translate(err))
	}
	return since, nil
}

// InsertDelivery enqueues a delivery the database did not (a test send).
func (r *Webhooks) InsertDelivery(ctx context.Context, d *WebhookDelivery) error {
	if _, err := r.db.NewInsert().Model(d).Returning("*").Exec(ctx); err != nil {
		return fmt.Errorf("insert webhook delivery: %w", translate(err))
	}
	return nil
}

// DeliveryFilter selects and pages an endpoint's deliveries.
type DeliveryFilter struct {
	EndpointID uuid.UUID
	Status     string // empty: every status
	Limit      int
	After      *page.Cursor
}

// Deliveries returns a page of an endpoint's deliveries, newest first.
func (r *Webhooks) Deliveries(ctx context.Context, f DeliveryFilter) ([]WebhookDelivery, error) {
	var rows []WebhookDelivery
	q := r.db.NewSelect().Model(&rows).Where("endpoint_id = ?", f.EndpointID)
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if err := newestFirst(q, f.After, f.Limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", translate(err))
	}
	return rows, nil
}

// Attempts returns the attempts of the given deliveries, oldest first, by delivery.
func (r *Webhooks) Attempts(ctx context.Context, deliveryIDs []uuid.UUID) (map[uuid.UUID][]WebhookAttempt, error) {
	out := map[uuid.UUID][]WebhookAttempt{}
	if len(deliveryIDs) == 0 {
		return out, nil
	}
	var rows []WebhookAttempt
	err := r.db.NewSelect().Model(&rows).Where("delivery_id IN (?)", bun.In(deliveryIDs)).Order("attempted_at", "id").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list webhook attempts: %w", translate(err))
	}
	for _, a := range rows {
		out[a.DeliveryID] = append(out[a.DeliveryID], a)
	}
	return out, nil
}

// Requeue makes an endpoint's delivery due now, with a fresh attempt window (a manual retry);
// ErrNotFound when the endpoint has no such delivery.
func (r *Webhooks) Requeue(ctx context.Context, endpointID, id uuid.UUID) (*WebhookDelivery, error) {
	d := new(WebhookDelivery)
	res, err := r.db.NewUpdate().Model(d).Set("status = ?", DeliveryPending).
		Set("next_attempt_at = clock_timestamp()").Set("retry_from = clock_timestamp()").Set("updated_at = clock_timestamp()").
		Where("id = ?", id).Where("endpoint_id = ?", endpointID).Returning("*").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("requeue webhook delivery: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("requeue webhook delivery: %w", ErrNotFound)
	}
	return d, nil
}

// Claim leases up to limit due deliveries of enabled endpoints to the caller for lease: other
// replicas skip the rows locked meanwhile and do not see them due until the lease ends, so a
// worker that dies mid-attempt leaves its deliveries to be claimed again.
func (r *Webhooks) Claim(ctx context.Context, limit int, lease time.Duration) ([]ClaimedDelivery, error) {
	var rows []ClaimedDelivery
	err := r.db.NewRaw(`WITH claimed AS (
		UPDATE webhook_deliveries SET next_attempt_at = clock_timestamp() + make_interval(secs => ?)
		WHERE id IN (
			SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
			WHERE d.status = 'pending' AND d.next_attempt_at <= clock_timestamp() AND e.disabled_at IS NULL
			ORDER BY d.next_attempt_at LIMIT ? FOR UPDATE OF d SKIP LOCKED)
		RETURNING *)
		SELECT claimed.*, e.url, e.secret FROM claimed JOIN webhook_endpoints e ON e.id = claimed.endpoint_id`,
		lease.Seconds(), limit).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("claim due webhook deliveries: %w", translate(err))
	}
	return rows, nil
}

// Release makes a claimed delivery due again at once (its attempt was cut short by shutdown).
func (r *Webhooks) Release(ctx context.Context, id uuid.UUID) error {
	_, err := r.db.NewUpdate().Model((*WebhookDelivery)(nil)).Set("next_attempt_at = clock_timestamp()").
		Where("id = ?", id).Where("status = ?", DeliveryPending).Exec(ctx)
	if err != nil {
		return fmt.Errorf("release webhook delivery: %w", translate(err))
	}
	return nil
}

// AttemptOutcome is an attempt and the delivery's state after it.
type AttemptOutcome struct {
	Attempt       WebhookAttempt
	Status        string    // the delivery's new status
	NextAttemptAt time.Time // when pending: the next attempt
}

// RecordAttempt stores an attempt and moves its pending delivery on (ErrNotFound when the
// delivery is gone or no longer pending: its endpoint was deleted or disabled meanwhile).
func (r *Webhooks) RecordAttempt(ctx context.Context, o AttemptOutcome) error {
	a := o.Attempt
	res, err := r.db.NewUpdate().Model((*WebhookDelivery)(nil)).Set("status = ?", o.Status).Set("attempts = attempts + 1").
		Set("next_attempt_at = ?", o.NextAttemptAt).Set("last_status_code = ?", a.StatusCode).Set("last_error = ?", a.Error).
		Set("last_latency_ms = ?", a.LatencyMS).Set("updated_at = clock_timestamp()").
		Where("id = ?", a.DeliveryID).Where("status = ?", DeliveryPending).Exec(ctx)
	if err != nil {
		return fmt.Errorf("update webhook delivery: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	if _, err := r.db.NewInsert().Model(&a).Exec(ctx); err != nil {
		return fmt.Errorf("insert webhook attempt: %w", translate(err))
	}
	return nil
}

// DeleteFinishedBefore removes up to limit deliveries (with their attempts) that ended, delivered
// or given up, and were last touched before t; how many went. Pending ones stay whatever their age.
func (r *Webhooks) DeleteFinishedBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	return deleteBatch(ctx, r.db, "delete old webhook deliveries", "webhook_deliveries", "status <> 'pending' AND updated_at < ?", limit, t)
}
