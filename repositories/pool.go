package repositories

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/insien/orchestrator/internal/sandbox/model"
)

// Pool member states: starting while its container is made, ready once it runs.
const (
	MemberStarting = "starting"
	MemberReady    = "ready"
)

// PoolMember is a warm pool member: a running container that no user owns yet. Its ID becomes
// the ID of the sandbox that claims it.
type PoolMember struct {
	bun.BaseModel `bun:"table:pool_members"`
	ID            uuid.UUID  `bun:"id,pk,type:uuid"`
	Image         string     `bun:"image"`
	CPU           float64    `bun:"cpu"`
	MemoryMB      int64      `bun:"memory_mb"`
	DiskMB        *int64     `bun:"disk_mb"` // nil: no disk limit
	Status        string     `bun:"status"`
	RuntimeID     *string    `bun:"runtime_id"`
	Instance      string     `bun:"instance"` // the replica that made it
	CreatedAt     time.Time  `bun:"created_at,nullzero,default:now()"`
	ReadyAt       *time.Time `bun:"ready_at"`
}

// PoolFailure is why a pool last failed to fill.
type PoolFailure struct {
	bun.BaseModel `bun:"table:pool_failures"`
	Image         string    `bun:"image,pk"`
	Message       string    `bun:"message"`
	FailedAt      time.Time `bun:"failed_at"`
}

// Pool reads and writes warm pool members. A member leaves the table by exactly one conditional
// DELETE (a claim, a replacement or a removal), so two replicas never both act on it.
type Pool struct{ db bun.IDB }

// Pool is the pool repository on the same connection or transaction, so that a claim and the
// sandbox it becomes commit together.
func (r *Sandboxes) Pool() *Pool { return &Pool{db: r.db} }

// Reserve records members about to be started, in state starting.
func (p *Pool) Reserve(ctx context.Context, members []PoolMember) error {
	if len(members) == 0 {
		return nil
	}
	for i := range members {
		members[i].Status = MemberStarting
	}
	if _, err := p.db.NewInsert().Model(&members).Returning("*").Exec(ctx); err != nil {
		return fmt.Errorf("reserve pool members: %w", translate(err))
	}
	return nil
}

// MarkReady records that a starting member runs; ErrNotFound when it was removed meanwhile.
func (p *Pool) MarkReady(ctx context.Context, id uuid.UUID, runtimeID string) error {
	res, err := p.db.NewUpdate().Model((*PoolMember)(nil)).
		Set("status = ?", MemberReady).Set("runtime_id = ?", runtimeID).Set("ready_at = now()").
		Where("id = ?", id).Where("status = ?", MemberStarting).Exec(ctx)
	if err != nil {
		return fmt.Errorf("mark pool member ready: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Claim takes up to n of the oldest ready members of image (of exactly cpu and memoryMB unless
// anySize, and always of exactly diskMB: no runtime changes a running workload's storage size) out
// of the pool and returns them, oldest first; none when none is ready. SKIP LOCKED lets concurrent
// claims on every replica take different members without waiting for each other.
func (p *Pool) Claim(ctx context.Context, image string, cpu float64, memoryMB int64, diskMB *int64, anySize bool, n int) ([]PoolMember, error) {
	var members []PoolMember
	err := p.db.NewRaw(`
		DELETE FROM pool_members WHERE id IN (
			SELECT id FROM pool_members
			WHERE status = ? AND image = ? AND (? OR (cpu = ? AND memory_mb = ?)) AND disk_mb IS NOT DISTINCT FROM ?
			ORDER BY ready_at
			LIMIT ?
			FOR UPDATE SKIP LOCKED)
		RETURNING *`, MemberReady, image, anySize, cpu, memoryMB, diskMB, n).Scan(ctx, &members)
	if err != nil {
		return nil, fmt.Errorf("claim pool members: %w", translate(err))
	}
	slices.SortFunc(members, func(a, b PoolMember) int { return a.ReadyAt.Compare(*b.ReadyAt) })
	return members, nil
}

// take removes the members that match where (ready ones older than a bound, starting ones left by
// a dead replica, ...) from the pool and returns them, for their containers to be removed.
func (p *Pool) take(ctx context.Context, step, where string, args ...any) ([]PoolMember, error) {
	var out []PoolMember
	err := p.db.NewRaw(`
		DELETE FROM pool_members WHERE id IN (
			SELECT id FROM pool_members WHERE `+where+`
			FOR UPDATE SKIP LOCKED)
		RETURNING *`, args...).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", step, translate(err))
	}
	return out, nil
}

// TakeIdle takes ready members that became ready before readyBefore.
func (p *Pool) TakeIdle(ctx context.Context, readyBefore time.Time) ([]PoolMember, error) {
	return p.take(ctx, "take idle pool members", "status = ? AND ready_at < ?", MemberReady, readyBefore)
}

// TakeStuck takes members left starting by a process that died: those instance made before
// processStart (its previous life), and any older than stuckBefore.
func (p *Pool) TakeStuck(ctx context.Context, instance string, processStart, stuckBefore time.Time) ([]PoolMember, error) {
	return p.take(ctx, "take stuck pool members", "status = ? AND ((instance = ? AND created_at < ?) OR created_at < ?)",
		MemberStarting, instance, processStart, stuckBefore)
}

// TakeIDs takes the given members, whatever their state (dead containers, pools no longer wanted).
func (p *Pool) TakeIDs(ctx context.Context, ids []uuid.UUID) ([]PoolMember, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return p.take(ctx, "take pool members", "id IN (?)", bun.In(ids))
}

// TakeExcess takes the n most recently made ready members of image (a pool made smaller).
func (p *Pool) TakeExcess(ctx context.Context, image string, n int) ([]PoolMember, error) {
	return p.take(ctx, "take excess pool members", "status = ? AND image = ? ORDER BY ready_at DESC LIMIT ?", MemberReady, image, n)
}

// Members returns every member.
func (p *Pool) Members(ctx context.Context) ([]PoolMember, error) {
	var out []PoolMember
	if err := p.db.NewSelect().Model(&out).OrderExpr("image, created_at").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list pool members: %w", translate(err))
	}
	return out, nil
}

// Count counts every member, starting ones included: they take capacity as sandboxes do.
func (p *Pool) Count(ctx context.Context) (int, error) {
	n, err := p.db.NewSelect().Model((*PoolMember)(nil)).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count pool members: %w", translate(err))
	}
	return int(n), nil
}

// RecordFailure keeps why image's pool could not fill.
func (p *Pool) RecordFailure(ctx context.Context, image, message string) error {
	_, err := p.db.NewInsert().Model(&PoolFailure{Image: image, Message: message, FailedAt: time.Now()}).
		On("CONFLICT (image) DO UPDATE").Set("message = EXCLUDED.message, failed_at = EXCLUDED.failed_at").Exec(ctx)
	if err != nil {
		return fmt.Errorf("record a pool failure: %w", translate(err))
	}
	return nil
}

// ClearFailure forgets image's failure once its pool fills again.
func (p *Pool) ClearFailure(ctx context.Context, image string) error {
	if _, err := p.db.NewDelete().Model((*PoolFailure)(nil)).Where("image = ?", image).Exec(ctx); err != nil {
		return fmt.Errorf("clear a pool failure: %w", translate(err))
	}
	return nil
}

// Failures returns every pool's last failure by image.
func (p *Pool) Failures(ctx context.Context) (map[string]PoolFailure, error) {
	var rows []PoolFailure
	if err := p.db.NewSelect().Model(&rows).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list pool failures: %w", translate(err))
	}
	out := make(map[string]PoolFailure, len(rows))
	for _, r := range rows {
		out[r.Image] = r
	}
	return out, nil
}

// CountCapacity counts what takes the instance's capacity (sandbox.max_per_instance): live
// sandboxes and pool members, in one statement so that no claim falls between two counts.
func (r *Sandboxes) CountCapacity(ctx context.Context) (int, error) {
	var n int
	err := r.db.NewRaw(`SELECT (SELECT count(*) FROM sandboxes WHERE status IN (?)) + (SELECT count(*) FROM pool_members)`,
		bun.In(model.Live)).Scan(ctx, &n)
	if err != nil {
		return 0, fmt.Errorf("count used capacity: %w", translate(err))
	}
	return n, nil
}
