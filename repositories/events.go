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

// Event is a row of the event log. Rows are written by the database's triggers with the change
// that causes them (see the events migration); this repository only reads and expires them.
type Event struct {
	bun.BaseModel `bun:"table:events"`
	ID            uuid.UUID       `bun:"id,pk,type:uuid"`
	UserID        uuid.UUID       `bun:"user_id,type:uuid"`
	Type          string          `bun:"type"`
	SandboxID     *uuid.UUID      `bun:"sandbox_id,type:uuid"`
	APIKeyID      *uuid.UUID      `bun:"api_key_id,type:uuid"`
	Actor         string          `bun:"actor"`
	RequestID     string          `bun:"request_id"`
	Data          json.RawMessage `bun:"data,type:jsonb"`
	CreatedAt     time.Time       `bun:"created_at"`
}

// EventFilter selects and pages a user's events.
type EventFilter struct {
	UserID    uuid.UUID
	Type      string     // empty: every type
	SandboxID *uuid.UUID // nil: every sandbox's, and the keys'
	Limit     int
	After     *page.Cursor // the last row of the previous page; nil: from the newest
}

// Events reads the event log.
type Events struct{ db bun.IDB }

// NewEvents builds the repository over db.
func NewEvents(db *bun.DB) *Events { return &Events{db: db} }

// List returns a page of events, newest first.
func (r *Events) List(ctx context.Context, f EventFilter) ([]Event, error) {
	var rows []Event
	q := r.db.NewSelect().Model(&rows).Where("user_id = ?", f.UserID)
	if f.Type != "" {
		q = q.Where("type = ?", f.Type)
	}
	if f.SandboxID != nil {
		q = q.Where("sandbox_id = ?", *f.SandboxID)
	}
	if err := newestFirst(q, f.After, f.Limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list events: %w", translate(err))
	}
	return rows, nil
}

// DeleteBefore removes up to limit events older than t and says how many it removed; a sweep
// repeats it until fewer come back, so no statement holds locks on a huge set at once.
func (r *Events) DeleteBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	return deleteBatch(ctx, r.db, "delete old events", "events", "created_at < ?", limit, t)
}
