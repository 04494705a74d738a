package repositories

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/insien/orchestrator/internal/sandbox/model"
)

type volumeRow struct {
	bun.BaseModel `bun:"table:volumes"`
	ID            uuid.UUID `bun:"id,pk,type:uuid"`
	UserID        uuid.UUID `bun:"user_id,type:uuid"`
	Name          string    `bun:"name"`
	SizeMB        int       `bun:"size_mb"`
	CreatedAt     time.Time `bun:"created_at,nullzero,default:now()"`
}

// Volumes reads and writes volumes, within the transaction of the Sandboxes it came from.
type Volumes struct{ db bun.IDB }

// Volumes is the volume repository on the same connection or transaction.
func (r *Sandboxes) Volumes() *Volumes { return &Volumes{db: r.db} }

// Insert stores a new volume (ErrConflict when the user has one of that name).
func (r *Volumes) Insert(ctx context.Context, v *model.Volume) error {
	row := &volumeRow{ID: v.ID, UserID: v.UserID, Name: v.Name, SizeMB: v.SizeMB}
	if _, err := r.db.NewInsert().Model(row).Returning("*").Exec(ctx); err != nil {
		return fmt.Errorf("insert volume: %w", translate(err))
	}
	*v = *row.volume()
	return nil
}

func (row *volumeRow) volume() *model.Volume {
	return &model.Volume{ID: row.ID, UserID: row.UserID, Name: row.Name, SizeMB: row.SizeMB, CreatedAt: row.CreatedAt}
}

// List returns a user's volumes, by name.
func (r *Volumes) List(ctx context.Context, userID uuid.UUID) ([]model.Volume, error) {
	var rows []volumeRow
	if err := r.db.NewSelect().Model(&rows).Where("user_id = ?", userID).Order("name").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list volumes: %w", translate(err))
	}
	out := make([]model.Volume, len(rows))
	for i := range rows {
		out[i] = *rows[i].volume()
	}
	return out, nil
}

// Find returns a user's volume by id or name; lock takes it FOR UPDATE (within a transaction),
// so that two sandboxes cannot both start using it.
func (r *Volumes) Find(ctx context.Context, userID uuid.UUID, idOrName string, lock bool) (*model.Volume, error) {
	row := new(volumeRow)
	q := byIDOrName(r.db.NewSelect().Model(row).Where("user_id = ?", userID), idOrName)
	if lock {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("find volume: %w", translate(err))
	}
	return row.volume(), nil
}

// UsedBy returns the live sandbox that mounts a volume (ErrNotFound when none does).
func (r *Volumes) UsedBy(ctx context.Context, volumeID uuid.UUID) (uuid.UUID, error) {
	var id uuid.UUID
	err := r.db.NewSelect().Model((*sandboxRow)(nil)).Column("id").
		Where("status IN (?)", bun.In(model.Live)).
		Where("volumes @> ?::jsonb", fmt.Sprintf(`[{"volume_id": %q}]`, volumeID)).
		Limit(1).Scan(ctx, &id)
	if err != nil {
		return uuid.Nil, fmt.Errorf("find a volume's sandbox: %w", translate(err))
	}
	return id, nil
}

// Usage returns how many volumes a user has and their total size.
func (r *Volumes) Usage(ctx context.Context, userID uuid.UUID) (count, totalMB int, err error) {
	err = r.db.NewSelect().Model((*volumeRow)(nil)).ColumnExpr("count(*), coalesce(sum(size_mb), 0)").
		Where("user_id = ?", userID).Scan(ctx, &count, &totalMB)
	if err != nil {
		return 0, 0, fmt.Errorf("count volumes: %w", translate(err))
	}
	return count, totalMB, nil
}

// Delete removes a user's volume.
func (r *Volumes) Delete(ctx context.Context, userID, id uuid.UUID) error {
	res, err := r.db.NewDelete().Model((*volumeRow)(nil)).Where("id = ?", id).Where("user_id = ?", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete volume: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// byIDOrName selects what a user names by its id or its name (volumes, templates).
func byIDOrName(q *bun.SelectQuery, idOrName string) *bun.SelectQuery {
	if id, err := uuid.Parse(idOrName); err == nil {
		return q.Where("id = ?", id)
	}
	return q.Where("name = ?", idOrName)
}
