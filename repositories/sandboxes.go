package repositories

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/insien/orchestrator/internal/platform/actor"
	"github.com/insien/orchestrator/internal/platform/page"
	"github.com/insien/orchestrator/internal/sandbox/model"
)

// sandboxRow is a row of sandboxes.
type sandboxRow struct {
	bun.BaseModel `bun:"table:sandboxes"`
	sandboxColumns
}

// sandboxColumns are model.Sandbox's fields, in its order, with their columns: the two convert
// into each other (Go ignores tags in a conversion), and the compiler keeps them in step.
type sandboxColumns struct {
	ID                     uuid.UUID           `bun:"id,pk,type:uuid"`
	UserID                 uuid.UUID           `bun:"user_id,type:uuid"`
	APIKeyID               *uuid.UUID          `bun:"api_key_id,type:uuid"`
	IdempotencyKey         *string             `bun:"idempotency_key"`
	IdempotencyFingerprint []byte              `bun:"idempotency_fingerprint"`
	Image                  string              `bun:"image"`
	Command                []string            `bun:"command,array"`
	Status                 model.Status        `bun:"status"`
	EndReason              *string             `bun:"end_reason"`
	ExitCode               *int                `bun:"exit_code"`
	RuntimeID              *string             `bun:"runtime_id"`
	Instance               string              `bun:"instance"`
	CPU                    float64             `bun:"cpu"`
	MemoryMB               int64               `bun:"memory_mb"`
	DiskMB                 *int64              `bun:"disk_mb"`
	Metadata               map[string]string   `bun:"metadata,type:jsonb"`
	EnvNames               []string            `bun:"env_names,array"`
	EnvEncrypted           []byte              `bun:"env_encrypted"`
	TimeoutSeconds         int                 `bun:"timeout_seconds"`
	CreatedAt              time.Time           `bun:"created_at,nullzero,default:now()"`
	UpdatedAt              time.Time           `bun:"updated_at,nullzero,default:now()"`
	StartedAt              *time.Time          `bun:"started_at"`
	ExpiresAt              time.Time           `bun:"expires_at"`
	EndedAt                *time.Time          `bun:"ended_at"`
	PausedAt               *time.Time          `bun:"paused_at"`
	AutoExtend             bool                `bun:"auto_extend"`
	Start                  string              `bun:"start"`
	PreviewGeneration      int                 `bun:"preview_generation"`
	PublicPorts            []int               `bun:"public_ports,array"`
	Network                model.Network       `bun:"network,type:jsonb"`
	Volumes                []model.VolumeMount `bun:"volumes,type:jsonb"`
}

func (r *sandboxRow) sandbox() *model.Sandbox {
	s := model.Sandbox(r.sandboxColumns)
	return &s
}

func sandboxes(rows []sandboxRow) []model.Sandbox {
	out := make([]model.Sandbox, len(rows))
	for i := range rows {
		out[i] = model.Sandbox(rows[i].sandboxColumns)
	}
	return out
}

// Sandboxes reads and writes sandboxes. State changes are single conditional UPDATEs, so two
// replicas (or two requests) can never both perform the same transition.
type Sandboxes struct{ db bun.IDB }

// NewSandboxes builds the repository over db.
func NewSandboxes(db *bun.DB) *Sandboxes { return &Sandboxes{db: db} }

// With returns the repository bound to a transaction.
func (r *Sandboxes) With(db bun.IDB) *Sandboxes { return &Sandboxes{db: db} }

// InTx runs fn with the repository bound to a transaction, committed when fn returns nil and
// rolled back otherwise. fn's error is returned as it is.
func (r *Sandboxes) InTx(ctx context.Context, fn func(ctx context.Context, tx *Sandboxes) error) error {
	return inTx(ctx, r.db, r.With, "sandbox transaction", fn)
}

// Insert stores a new sandbox and sets the columns the database fills in (created_at, updated_at).
func (r *Sandboxes) Insert(ctx context.Context, s *model.Sandbox) error {
	return r.InsertAll(ctx, []*model.Sandbox{s}, []actor.Actor{actor.From(ctx)})
}

// stampedSandboxRow is a sandbox row with the actor of its insert: the rows of one statement may
// each come from another request.
type stampedSandboxRow struct {
	bun.BaseModel `bun:"table:sandboxes"`
	sandboxColumns
	ChangedBy       string `bun:"changed_by"`
	ChangeRequestID string `bun:"change_request_id"`
}

// InsertAll stores new sandboxes in one statement, each created by its actor (actors[i], whom its
// events name), and sets the columns the database fills in.
func (r *Sandboxes) InsertAll(ctx context.Context, sandboxes []*model.Sandbox, actors []actor.Actor) error {
	rows := make([]stampedSandboxRow, len(sandboxes))
	for i, s := range sandboxes {
		rows[i] = stampedSandboxRow{sandboxColumns: sandboxColumns(*s), ChangedBy: actors[i].Name(), ChangeRequestID: actors[i].RequestID}
	}
	if _, err := r.db.NewInsert().Model(&rows).Returning("*").Exec(ctx); err != nil {
		return fmt.Errorf("insert sandboxes: %w", translate(err))
	}
	for i := range rows {
		*sandboxes[i] = model.Sandbox(rows[i].sandboxColumns)
	}
	return nil
}

// one runs a query that returns one sandbox.
func one(ctx context.Context, step string, query func(row *sandboxRow) error) (*model.Sandbox, error) {
	row := new(sandboxRow)
	if err := query(row); err != nil {
		return nil, fmt.Errorf("%s: %w", step, translate(err))
	}
	return row.sandbox(), nil
}

// Get returns a user's sandbox.
func (r *Sandboxes) Get(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error) {
	return one(ctx, "get sandbox", func(row *sandboxRow) error {
		return r.db.NewSelect().Model(row).Where("id = ?", id).Where("user_id = ?", userID).Scan(ctx)
	})
}

// ByIdempotencyKey finds the sandbox a user created with this Idempotency-Key.
func (r *Sandboxes) ByIdempotencyKey(ctx context.Context, userID uuid.UUID, key string) (*model.Sandbox, error) {
	return one(ctx, "find sandbox by idempotency key", func(row *sandboxRow) error {
		return r.db.NewSelect().Model(row).Where("user_id = ?", userID).Where("idempotency_key = ?", key).Scan(ctx)
	})
}

// IdempotencyKey is an Idempotency-Key as its user sent it: keys are unique per user.
type IdempotencyKey struct {
	UserID uuid.UUID
	Key    string
}

// TakenIdempotencyKeys returns which of keys a sandbox already carries.
func (r *Sandboxes) TakenIdempotencyKeys(ctx context.Context, keys []IdempotencyKey) (map[IdempotencyKey]bool, error) {
	taken := map[IdempotencyKey]bool{}
	if len(keys) == 0 {
		return taken, nil
	}
	users, texts := make([]uuid.UUID, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		users[i], texts[i] = k.UserID, k.Key
	}
	var found []struct {
		UserID uuid.UUID `bun:"user_id"`
		Key    string    `bun:"idempotency_key"`
	}
	err := r.db.NewRaw(`SELECT s.user_id, s.idempotency_key FROM sandboxes s
		JOIN unnest(?::uuid[], ?::text[]) AS k (user_id, key) ON s.user_id = k.user_id AND s.idempotency_key = k.key`,
		pgdialect.Array(users), pgdialect.Array(texts)).Scan(ctx, &found)
	if err != nil {
		return nil, fmt.Errorf("find taken idempotency keys: %w", translate(err))
	}
	for _, f := range found {
		taken[IdempotencyKey{UserID: f.UserID, Key: f.Key}] = true
	}
	return taken, nil
}

// CountLive counts a user's live sandboxes (CountCapacity counts everyone's, with pool members).
func (r *Sandboxes) CountLive(ctx context.Context, userID uuid.UUID) (int, error) {
	n, err := r.db.NewSelect().Model((*sandboxRow)(nil)).Where("status IN (?)", bun.In(model.Live)).
		Where("user_id = ?", userID).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count live sandboxes: %w", translate(err))
	}
	return int(n), nil
}

// CountLiveByStatus counts every user's live sandboxes by status (the partial index on live rows
// serves it; ended ones are history and are not counted).
func (r *Sandboxes) CountLiveByStatus(ctx context.Context) (map[model.Status]int, error) {
	var rows []struct {
		Status model.Status
		N      int
	}
	err := r.db.NewSelect().Model((*sandboxRow)(nil)).Column("status").ColumnExpr("count(*) AS n").
		Where("status IN (?)", bun.In(model.Live)).Group("status").Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("count live sandboxes by status: %w", translate(err))
	}
	counts := make(map[model.Status]int, len(model.Live))
	for _, row := range rows {
		counts[row.Status] = row.N
	}
	return counts, nil
}

// ListFilter selects and pages a user's sandboxes.
type ListFilter struct {
	UserID   uuid.UUID
	Status   model.Status
	Metadata map[string]string
	Limit    int
	After    *page.Cursor // the last row of the previous page; nil: from the newest
}

// List returns a page of sandboxes, newest first.
func (r *Sandboxes) List(ctx context.Context, f ListFilter) ([]model.Sandbox, error) {
	var rows []sandboxRow
	q := r.db.NewSelect().Model(&rows).Where("user_id = ?", f.UserID)
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if len(f.Metadata) > 0 {
		doc, _ := json.Marshal(f.Metadata)
		q = q.Where("metadata @> ?::jsonb", string(doc))
	}
	if err := newestFirst(q, f.After, f.Limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", translate(err))
	}
	return sandboxes(rows), nil
}

// Transition moves a sandbox from one of the states in from to the state to, setting extra
// columns, and returns the updated row; ErrNotFound when the sandbox is not in any of from.
func (r *Sandboxes) Transition(ctx context.Context, id uuid.UUID, from []model.Status, to model.Status, set map[string]any) (*model.Sandbox, error) {
	return one(ctx, "move sandbox to "+string(to), func(row *sandboxRow) error {
		q := stampUpdate(ctx, r.db.NewUpdate().Model(row)).
			Set("status = ?", to).Set("updated_at = now()").
			Where("id = ?", id).Where("status IN (?)", bun.In(from))
		for column, value := range set {
			q = q.Set("? = ?", bun.Ident(column), value)
		}
		return q.Returning("*").Scan(ctx)
	})
}

// SetExpiry changes expires_at of a running or paused sandbox of the user.
func (r *Sandboxes) SetExpiry(ctx context.Context, userID, id uuid.UUID, expiresAt time.Time) (*model.Sandbox, error) {
	return one(ctx, "set sandbox expiry", func(row *sandboxRow) error {
		return r.db.NewUpdate().Model(row).
			Set("expires_at = ?", expiresAt).Set("updated_at = now()").
			Where("id = ?", id).Where("user_id = ?", userID).
			Where("status IN (?)", bun.In(model.Up)).
			Returning("*").Scan(ctx)
	})
}

// RevokePreviewURLs moves a user's sandbox to a new preview URL generation, which every URL
// issued before no longer matches.
func (r *Sandboxes) RevokePreviewURLs(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error) {
	return one(ctx, "revoke preview URLs", func(row *sandboxRow) error {
		return r.db.NewUpdate().Model(row).
			Set("preview_generation = preview_generation + 1").Set("updated_at = now()").
			Where("id = ?", id).Where("user_id = ?", userID).
			Returning("*").Scan(ctx)
	})
}

// SetPortPublic opens (or closes) a port of a user's live sandbox to requests without a token.
func (r *Sandboxes) SetPortPublic(ctx context.Context, userID, id uuid.UUID, port int, public bool) (*model.Sandbox, error) {
	return one(ctx, "set a port public", func(row *sandboxRow) error {
		return r.db.NewUpdate().Model(row).
			Set(`public_ports = CASE WHEN ? THEN ARRAY(SELECT DISTINCT p FROM unnest(array_append(public_ports, ?::int)) AS p ORDER BY p)
				ELSE array_remove(public_ports, ?::int) END`, public, port, port).
			Set("updated_at = now()").
			Where("id = ?", id).Where("user_id = ?", userID).
			Where("status IN (?)", bun.In(model.Live)).
			Returning("*").Scan(ctx)
	})
}

// SetNetwork replaces the egress policy of a user's live sandbox.
func (r *Sandboxes) SetNetwork(ctx context.Context, userID, id uuid.UUID, network model.Network) (*model.Sandbox, error) {
	return one(ctx, "set a sandbox's network policy", func(row *sandboxRow) error {
		return r.db.NewUpdate().Model(row).
			Set("network = ?", network).Set("updated_at = now()").
			Where("id = ?", id).Where("user_id = ?", userID).
			Where("status IN (?)", bun.In(model.Live)).
			Returning("*").Scan(ctx)
	})
}

// NetworkOf returns the egress policy of a sandbox whose main process runs (ErrNotFound once it
// has ended), for the replicas that enforce it.
func (r *Sandboxes) NetworkOf(ctx context.Context, id uuid.UUID) (model.Network, error) {
	row := new(sandboxRow)
	err := r.db.NewSelect().Model(row).Column("network").
		Where("id = ?", id).Where("status IN (?)", bun.In(model.Up)).Scan(ctx)
	if err != nil {
		return model.Network{}, fmt.Errorf("read a sandbox's network policy: %w", translate(err))
	}
	return row.Network, nil
}

// OwnerOf returns the user a sandbox belongs to (ErrNotFound when there is no such sandbox).
func (r *Sandboxes) OwnerOf(ctx context.Context, id uuid.UUID) (uuid.UUID, error) {
	var owner uuid.UUID
	err := r.db.NewSelect().Model((*sandboxRow)(nil)).Column("user_id").Where("id = ?", id).Scan(ctx, &owner)
	if err != nil {
		return uuid.Nil, fmt.Errorf("find a sandbox's owner: %w", translate(err))
	}
	return owner, nil
}

// ClaimExpired atomically moves up to limit expired live sandboxes to stopping and returns them.
// SKIP LOCKED lets several replicas claim disjoint sets: each sandbox is reaped exactly once.
// When pausedKeepsExpiry is false a paused sandbox's clock is frozen: only max lifetime ends it.
func (r *Sandboxes) ClaimExpired(ctx context.Context, limit int, pausedKeepsExpiry bool, maxLifetime time.Duration) ([]model.Sandbox, error) {
	var rows []sandboxRow
	err := r.db.NewRaw(`
		UPDATE sandboxes SET status = ?, end_reason = ?, updated_at = now(), changed_by = ?, change_request_id = ''
		WHERE id IN (
			SELECT id FROM sandboxes
			WHERE (status = ? AND expires_at <= now())
			   OR (status = ? AND ((? AND expires_at <= now()) OR created_at + ? * interval '1 second' <= now()))
			ORDER BY expires_at
			LIMIT ?
			FOR UPDATE SKIP LOCKED)
		RETURNING *`, model.StatusStopping, model.EndExpired, actor.System, model.StatusRunning, model.StatusPaused,
		pausedKeepsExpiry, maxLifetime.Seconds(), limit).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("claim expired sandboxes: %w", translate(err))
	}
	return sandboxes(rows), nil
}

// Touch pushes expires_at forward to at (never backward) for a running sandbox.
func (r *Sandboxes) Touch(ctx context.Context, id uuid.UUID, at time.Time) (*model.Sandbox, error) {
	return one(ctx, "extend sandbox on activity", func(row *sandboxRow) error {
		return r.db.NewUpdate().Model(row).
			Set("expires_at = ?", at).Set("updated_at = now()").
			Where("id = ?", id).Where("status = ?", model.StatusRunning).Where("expires_at < ?", at).
			Returning("*").Scan(ctx)
	})
}

// ClaimStuck moves sandboxes left mid-transition by a dead process to stopping and returns them,
// for the reconciler to finish: rows pending or stopping for longer than stuckBefore allows, and
// pending rows this instance created before processStart (its previous life crashed mid-create).
func (r *Sandboxes) ClaimStuck(ctx context.Context, instance string, processStart, stuckBefore time.Time, limit int) ([]model.Sandbox, error) {
	var rows []sandboxRow
	err := r.db.NewRaw(`
		UPDATE sandboxes SET status = ?,
			end_reason = CASE WHEN status = ? THEN ? ELSE end_reason END,
			updated_at = now(), changed_by = ?, change_request_id = ''
		WHERE id IN (
			SELECT id FROM sandboxes
			WHERE (status IN (?, ?) AND updated_at < ?)
			   OR (status = ? AND instance = ? AND updated_at < ?)
			LIMIT ?
			FOR UPDATE SKIP LOCKED)
		RETURNING *`, model.StatusStopping, model.StatusPending, model.EndCreateInterrupted, actor.System,
		model.StatusPending, model.StatusStopping, stuckBefore,
		model.StatusPending, instance, processStart, limit).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("claim stuck sandboxes: %w", translate(err))
	}
	return sandboxes(rows), nil
}

// Live returns every live sandbox by id.
func (r *Sandboxes) Live(ctx context.Context) (map[uuid.UUID]model.Sandbox, error) {
	var rows []sandboxRow
	if err := r.db.NewSelect().Model(&rows).Where("status IN (?)", bun.In(model.Live)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list live sandboxes: %w", translate(err))
	}
	out := make(map[uuid.UUID]model.Sandbox, len(rows))
	for _, row := range rows {
		out[row.ID] = model.Sandbox(row.sandboxColumns)
	}
	return out, nil
}

// LiveForUser returns every live sandbox of a user.
func (r *Sandboxes) LiveForUser(ctx context.Context, userID uuid.UUID) ([]model.Sandbox, error) {
	var rows []sandboxRow
	err := r.db.NewSelect().Model(&rows).Where("user_id = ?", userID).Where("status IN (?)", bun.In(model.Live)).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list a user's live sandboxes: %w", translate(err))
	}
	return sandboxes(rows), nil
}
