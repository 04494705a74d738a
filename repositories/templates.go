package repositories

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/insien/orchestrator/internal/sandbox/model"
)

type templateRow struct {
	bun.BaseModel `bun:"table:templates"`
	ID            uuid.UUID  `bun:"id,pk,type:uuid"`
	UserID        uuid.UUID  `bun:"user_id,type:uuid"`
	Name          string     `bun:"name"`
	Source        string     `bun:"source"`
	Status        string     `bun:"status"`
	Image         string     `bun:"image"`
	ContextHash   string     `bun:"context_hash"`
	Error         *string    `bun:"error"`
	FailedStep    *string    `bun:"failed_step"`
	SizeBytes     int64      `bun:"size_bytes"`
	Instance      string     `bun:"instance"`
	CreatedAt     time.Time  `bun:"created_at,nullzero,default:now()"`
	FinishedAt    *time.Time `bun:"finished_at"`
}

func (row *templateRow) template() *model.Template {
	t := model.Template{ID: row.ID, UserID: row.UserID, Name: row.Name, Source: row.Source, Status: row.Status,
		Image: row.Image, ContextHash: row.ContextHash, Error: row.Error, FailedStep: row.FailedStep,
		SizeBytes: row.SizeBytes, Instance: row.Instance, CreatedAt: row.CreatedAt, FinishedAt: row.FinishedAt}
	return &t
}

// Templates reads and writes templates.
type Templates struct{ db bun.IDB }

// Templates is the template repository on the same connection or transaction.
func (r *Sandboxes) Templates() *Templates { return &Templates{db: r.db} }

// Insert stores a new template (ErrConflict when the user has one of that name).
func (r *Templates) Insert(ctx context.Context, t *model.Template) error {
	row := &templateRow{ID: t.ID, UserID: t.UserID, Name: t.Name, Source: t.Source, Status: t.Status, Image: t.Image,
		ContextHash: t.ContextHash, SizeBytes: t.SizeBytes, Instance: t.Instance, FinishedAt: t.FinishedAt}
	if _, err := r.db.NewInsert().Model(row).Returning("*").Exec(ctx); err != nil {
		return fmt.Errorf("insert template: %w", translate(err))
	}
	*t = *row.template()
	return nil
}

// Find returns a user's template by id or name.
func (r *Templates) Find(ctx context.Context, userID uuid.UUID, idOrName string) (*model.Template, error) {
	row := new(templateRow)
	if err := byIDOrName(r.db.NewSelect().Model(row).Where("user_id = ?", userID), idOrName).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find template: %w", translate(err))
	}
	return row.template(), nil
}

// List returns a user's templates, newest first.
func (r *Templates) List(ctx context.Context, userID uuid.UUID) ([]model.Template, error) {
	var rows []templateRow
	if err := r.db.NewSelect().Model(&rows).Where("user_id = ?", userID).Order("created_at DESC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list templates: %w", translate(err))
	}
	out := make([]model.Template, len(rows))
	for i := range rows {
		out[i] = *rows[i].template()
	}
	return out, nil
}

// Usage returns how many templates a user has and the size of their images (an image shared by
// cached builds counts once).
func (r *Templates) Usage(ctx context.Context, userID uuid.UUID) (count int, bytes int64, err error) {
	err = r.db.NewRaw(`SELECT count(*), coalesce((SELECT sum(size) FROM (SELECT DISTINCT image, size_bytes AS size
		FROM templates WHERE user_id = ?) AS images), 0) FROM templates WHERE user_id = ?`, userID, userID).Scan(ctx, &count, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("count templates: %w", translate(err))
	}
	return count, bytes, nil
}

// Cached returns a user's ready template built from the same Dockerfile and files.
func (r *Templates) Cached(ctx context.Context, userID uuid.UUID, hash string) (*model.Template, error) {
	row := new(templateRow)
	err := r.db.NewSelect().Model(row).Where("user_id = ?", userID).
		Where("context_hash = ?", hash).Where("status = ?", model.TemplateReady).Limit(1).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("find a cached template: %w", translate(err))
	}
	return row.template(), nil
}

// AppendLog adds to a template's build log.
func (r *Templates) AppendLog(ctx context.Context, id uuid.UUID, chunk string) error {
	_, err := r.db.NewUpdate().Model((*templateRow)(nil)).Set("build_log = build_log || ?", chunk).Where("id = ?", id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("append to a build log: %w", translate(err))
	}
	return nil
}

// Log returns a template's build log from offset (in bytes) and its status.
func (r *Templates) Log(ctx context.Context, id uuid.UUID, offset int) (string, string, error) {
	var rest, status string
	err := r.db.NewSelect().Model((*templateRow)(nil)).ColumnExpr("substr(build_log, ? + 1), status", offset).
		Where("id = ?", id).Scan(ctx, &rest, &status)
	if err != nil {
		return "", "", fmt.Errorf("read a build log: %w", translate(err))
	}
	return rest, status, nil
}

// Finish records a build's end: ready with its size, or failed with why.
func (r *Templates) Finish(ctx context.Context, id uuid.UUID, status string, size int64, errMsg, step *string) error {
	_, err := r.db.NewUpdate().Model((*templateRow)(nil)).
		Set("status = ?", status).Set("size_bytes = ?", size).Set("error = ?", errMsg).Set("failed_step = ?", step).
		Set("finished_at = now()").Where("id = ?", id).Where("status = ?", model.TemplateBuilding).Exec(ctx)
	if err != nil {
		return fmt.Errorf("finish a build: %w", translate(err))
	}
	return nil
}

// FailInterrupted ends the builds an instance left when it died (started before processStart)
// and returns them.
func (r *Templates) FailInterrupted(ctx context.Context, instance string, processStart time.Time) ([]model.Template, error) {
	var rows []templateRow
	err := r.db.NewUpdate().Model(&rows).
		Set("status = ?", model.TemplateFailed).Set("error = ?", "the build was interrupted (the orchestrator restarted); create the template again").
		Set("finished_at = now()").
		Where("status = ?", model.TemplateBuilding).Where("instance = ?", instance).Where("created_at < ?", processStart).
		Returning("id, image").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("fail interrupted builds: %w", translate(err))
	}
	out := make([]model.Template, len(rows))
	for i := range rows {
		out[i] = *rows[i].template()
	}
	return out, nil
}

// ImageUsers counts the templates other than id that use image, and the live sandboxes running it.
func (r *Templates) ImageUsers(ctx context.Context, id uuid.UUID, image string) (templates, sandboxes int64, err error) {
	templates, err = r.db.NewSelect().Model((*templateRow)(nil)).Where("image = ?", image).Where("id != ?", id).Count(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("count a template image's users: %w", translate(err))
	}
	sandboxes, err = r.db.NewSelect().Model((*sandboxRow)(nil)).Where("image = ?", image).Where("status IN (?)", bun.In(model.Live)).Count(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("count a template image's sandboxes: %w", translate(err))
	}
	return templates, sandboxes, nil
}

// imageLock is the advisory lock of a template image (shared by the templates of cached builds).
const imageLock = "hashtextextended('template image ' || ?, 0)"

// LockImage takes image's lock exclusively until the transaction ends: to count its users and
// delete a template of it while no create from it is half done.
func (r *Templates) LockImage(ctx context.Context, image string) error {
	if _, err := r.db.ExecContext(ctx, "SELECT pg_advisory_xact_lock("+imageLock+")", image); err != nil {
		return fmt.Errorf("lock a template image: %w", translate(err))
	}
	return nil
}

// HoldImage takes image's lock shared until the transaction ends (creates from one template do
// not wait for each other) and checks that the user's template id of it is still ready;
// ErrNotFound when it is not.
func (r *Templates) HoldImage(ctx context.Context, userID, id uuid.UUID, image string) error {
	if _, err := r.db.ExecContext(ctx, "SELECT pg_advisory_xact_lock_shared("+imageLock+")", image); err != nil {
		return fmt.Errorf("hold a template image: %w", translate(err))
	}
	exists, err := r.db.NewSelect().Model((*templateRow)(nil)).Where("id = ?", id).Where("user_id = ?", userID).
		Where("status = ?", model.TemplateReady).Exists(ctx)
	if err != nil {
		return fmt.Errorf("check a held template: %w", translate(err))
	}
	if !exists {
		return ErrNotFound
	}
	return nil
}

// Delete removes a user's template.
func (r *Templates) Delete(ctx context.Context, userID, id uuid.UUID) error {
	if _, err := r.db.NewDelete().Model((*templateRow)(nil)).Where("id = ?", id).Where("user_id = ?", userID).Exec(ctx); err != nil {
		return fmt.Errorf("delete template: %w", translate(err))
	}
	return nil
}
