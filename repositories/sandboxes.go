package repositories

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Sandbox is a row of sandboxes.
type Sandbox struct {
	bun.BaseModel `bun:"table:sandboxes"`

	ID             uuid.UUID  `bun:"id,pk,type:uuid"`
	UserID         uuid.UUID  `bun:"user_id,type:uuid"`
	APIKeyID       *uuid.UUID `bun:"api_key_id,type:uuid"`
	IdempotencyKey *string    `bun:"idempotency_key"`
	// IdempotencyFingerprint is a SHA-256 of the create request the key came with (nil before
	// fingerprints were recorded).
	IdempotencyFingerprint []byte            `bun:"idempotency_fingerprint"`
	Image                  string            `bun:"image"`
	Command                []string          `bun:"command,array"`
	Status                 string            `bun:"status"`
	EndReason              *string           `bun:"end_reason"`
	ExitCode               *int              `bun:"exit_code"` // the main process's status, when it ended by itself
	RuntimeID              *string           `bun:"runtime_id"`
	Instance               string            `bun:"instance"`
	CPU                    float64           `bun:"cpu"`
	MemoryMB               int64             `bun:"memory_mb"`
	Metadata               map[string]string `bun:"metadata,type:jsonb"`
	EnvNames               []string          `bun:"env_names,array"`
	EnvEncrypted           []byte            `bun:"env_encrypted"`
	TimeoutSeconds         int               `bun:"timeout_seconds"`
	CreatedAt              time.Time         `bun:"created_at,nullzero,default:now()"`
	UpdatedAt              time.Time         `bun:"updated_at,nullzero,default:now()"`
	StartedAt              *time.Time        `bun:"started_at"`
	ExpiresAt              time.Time         `bun:"expires_at"`
	EndedAt                *time.Time        `bun:"ended_at"`
	PausedAt               *time.Time        `bun:"paused_at"`
	AutoExtend             bool              `bun:"auto_extend"`
}

// Sandbox states. Live states hold runtime resources.
const (
	StatusPending  = "pending"
	StatusRunning  = "running"
	StatusPaused   = "paused"
	StatusStopping = "stopping"
	StatusStopped  = "stopped"
	StatusFailed   = "failed"
	StatusExpired  = "expired"
)

// LiveStatuses are the sandbox states that hold runtime resources and count against quotas.
var LiveStatuses = []string{StatusPending, StatusRunning, StatusPaused, StatusStopping}

// Sandboxes reads and writes sandboxes. State changes are single conditional UPDATEs, so two
// replicas (or two requests) can never both perform the same transition.
type Sandboxes struct{ db bun.IDB }

// NewSandboxes builds the repository over db.
func NewSandboxes(db *bun.DB) *Sandboxes { return &Sandboxes{db: db} }

// With returns the repository bound to a transaction.
func (r *Sandboxes) With(db bun.IDB) *Sandboxes { return &Sandboxes{db: db} }

// Insert stores a new sandbox.
func (r *Sandboxes) Insert(ctx context.Context, s *Sandbox) error {
	_, err := r.db.NewInsert().Model(s).Returning("*").Exec(ctx)
	return translate(err)
}

// Get returns a user's sandbox.
func (r *Sandboxes) Get(ctx context.Context, userID, id uuid.UUID) (*Sandbox, error) {
	s := new(Sandbox)
	err := r.db.NewSelect().Model(s).Where("id = ?", id).Where("user_id = ?", userID).Scan(ctx)
	return s, translate(err)
}

// ByIdempotencyKey finds the sandbox a user created with this Idempotency-Key.
func (r *Sandboxes) ByIdempotencyKey(ctx context.Context, userID uuid.UUID, key string) (*Sandbox, error) {
	s := new(Sandbox)
	err := r.db.NewSelect().Model(s).Where("user_id = ?", userID).Where("idempotency_key = ?", key).Scan(ctx)
	return s, translate(err)
}

// CountLive counts live sandboxes, for one user or (uuid.Nil) for everyone.
func (r *Sandboxes) CountLive(ctx context.Context, userID uuid.UUID) (int, error) {
	q := r.db.NewSelect().Model((*Sandbox)(nil)).Where("status IN (?)", bun.In(LiveStatuses))
	if userID != uuid.Nil {
		q = q.Where("user_id = ?", userID)
	}
	n, err := q.Count(ctx)
	return int(n), translate(err)
}

// ListFilter selects and pages a user's sandboxes.
type ListFilter struct {
	UserID   uuid.UUID
	Status   string
	Metadata map[string]string
	Limit    int
	// After is the (created_at, id) of the last row of the previous page.
	AfterCreated *time.Time
	AfterID      uuid.UUID
}

// List returns a page of sandboxes, newest first.
func (r *Sandboxes) List(ctx context.Context, f ListFilter) ([]Sandbox, error) {
	var out []Sandbox
	q := r.db.NewSelect().Model(&out).Where("user_id = ?", f.UserID)
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if len(f.Metadata) > 0 {
		doc, _ := json.Marshal(f.Metadata)
		q = q.Where("metadata @> ?::jsonb", string(doc))
	}
	if f.AfterCreated != nil {
		q = q.Where("(created_at, id) < (?, ?)", *f.AfterCreated, f.AfterID)
	}
	err := q.OrderExpr("created_at DESC, id DESC").Limit(int64(f.Limit)).Scan(ctx)
	return out, translate(err)
}

// Transition moves a sandbox from one of the states in from to the state to, setting extra
// columns, and returns the updated row; ErrNotFound when the sandbox is not in any of from.
func (r *Sandboxes) Transition(ctx context.Context, id uuid.UUID, from []string, to string, set map[string]any) (*Sandbox, error) {
	s := new(Sandbox)
	q := r.db.NewUpdate().Model(s).
		Set("status = ?", to).Set("updated_at = now()").
		Where("id = ?", id).Where("status IN (?)", bun.In(from))
	for column, value := range set {
		q = q.Set("? = ?", bun.Ident(column), value)
	}
	err := q.Returning("*").Scan(ctx)
	return s, translate(err)
}

// SetExpiry changes expires_at of a running or paused sandbox of the user.
func (r *Sandboxes) SetExpiry(ctx context.Context, userID, id uuid.UUID, expiresAt time.Time) (*Sandbox, error) {
	s := new(Sandbox)
	err := r.db.NewUpdate().Model(s).
		Set("expires_at = ?", expiresAt).Set("updated_at = now()").
		Where("id = ?", id).Where("user_id = ?", userID).
		Where("status IN (?)", bun.In([]string{StatusRunning, StatusPaused})).
		Returning("*").Scan(ctx)
	return s, translate(err)
}

// ClaimExpired atomically moves up to limit expired live sandboxes to stopping and returns them.
// SKIP LOCKED lets several replicas claim disjoint sets: each sandbox is reaped exactly once.
// When pausedKeepsExpiry is false a paused sandbox's clock is frozen: only max lifetime ends it.
func (r *Sandboxes) ClaimExpired(ctx context.Context, limit int, pausedKeepsExpiry bool, maxLifetime time.Duration) ([]Sandbox, error) {
	var out []Sandbox
	err := r.db.NewRaw(`
		UPDATE sandboxes SET status = 'stopping', end_reason = 'expired', updated_at = now()
		WHERE id IN (
			SELECT id FROM sandboxes
			WHERE (status = 'running' AND expires_at <= now())
			   OR (status = 'paused' AND ((? AND expires_at <= now()) OR created_at + ? * interval '1 second' <= now()))
			ORDER BY expires_at
			LIMIT ?
			FOR UPDATE SKIP LOCKED)
		RETURNING *`, pausedKeepsExpiry, maxLifetime.Seconds(), limit).Scan(ctx, &out)
	return out, translate(err)
}

// Touch pushes expires_at forward to at (never backward) for a running sandbox.
func (r *Sandboxes) Touch(ctx context.Context, id uuid.UUID, at time.Time) (*Sandbox, error) {
	s := new(Sandbox)
	err := r.db.NewUpdate().Model(s).
		Set("expires_at = ?", at).Set("updated_at = now()").
		Where("id = ?", id).Where("status = ?", StatusRunning).Where("expires_at < ?", at).
		Returning("*").Scan(ctx)
	return s, translate(err)
}

// ClaimStuck moves sandboxes left mid-transition by a dead process to stopping and returns them,
// for the reconciler to finish: rows pending or stopping for longer than stuckBefore allows, and
// pending rows this instance created before processStart (its previous life crashed mid-create).
func (r *Sandboxes) ClaimStuck(ctx context.Context, instance string, processStart, stuckBefore time.Time, limit int) ([]Sandbox, error) {
	var out []Sandbox
	err := r.db.NewRaw(`
		UPDATE sandboxes SET status = 'stopping',
			end_reason = CASE WHEN status = 'pending' THEN 'create_interrupted' ELSE end_reason END,
			updated_at = now()
		WHERE id IN (
			SELECT id FROM sandboxes
			WHERE (status IN ('pending', 'stopping') AND updated_at < ?)
			   OR (status = 'pending' AND instance = ? AND updated_at < ?)
			LIMIT ?
			FOR UPDATE SKIP LOCKED)
		RETURNING *`, stuckBefore, instance, processStart, limit).Scan(ctx, &out)
	return out, translate(err)
}

// Live returns every live sandbox by id.
func (r *Sandboxes) Live(ctx context.Context) (map[uuid.UUID]Sandbox, error) {
	var rows []Sandbox
	err := r.db.NewSelect().Model(&rows).Where("status IN (?)", bun.In(LiveStatuses)).Scan(ctx)
	out := make(map[uuid.UUID]Sandbox, len(rows))
	for _, s := range rows {
		out[s.ID] = s
	}
	return out, translate(err)
}

// LiveForUser returns every live sandbox of a user.
func (r *Sandboxes) LiveForUser(ctx context.Context, userID uuid.UUID) ([]Sandbox, error) {
	var out []Sandbox
	err := r.db.NewSelect().Model(&out).Where("user_id = ?", userID).Where("status IN (?)", bun.In(LiveStatuses)).Scan(ctx)
	return out, translate(err)
}
