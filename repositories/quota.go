package repositories

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// capacityLockKey names the advisory lock that serializes, across replicas, everything that adds
// to what takes the instance's capacity (sandbox.max_per_instance): cold creates and pool fills.
const capacityLockKey int64 = 0x73616e64626f78 // "sandbox"

// LockCapacity takes the capacity lock until the transaction the repository is bound to ends, so
// that concurrent creates and pool fills on every replica count and insert one at a time and can
// never exceed the capacity between counting and inserting. Outside a transaction it would be
// released at once. A claim of a pool member needs no capacity lock: the member already held its
// place, and the claim moves it from one count to the other in one commit.
func (r *Sandboxes) LockCapacity(ctx context.Context) error {
	if _, err := r.db.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", capacityLockKey); err != nil {
		return fmt.Errorf("take the sandbox capacity lock: %w", translate(err))
	}
	return nil
}

// LockOwner locks a user who is to own something new (a volume, a template) until the
// transaction ends: creates of one user count and insert one at a time (their quota holds under
// any concurrency, while other users' creates go on in parallel), and a create is ordered against
// a soft delete of the user that would otherwise miss it. ErrNotFound when the user does not
// exist or is deleted. FOR NO KEY UPDATE leaves the foreign-key checks of inserts that reference
// the user unblocked. A sandbox create takes the same lock through LockOwnerCountLive.
func (r *Sandboxes) LockOwner(ctx context.Context, userID uuid.UUID) error {
	if err := lockUser(ctx, r.db, userID); err != nil {
		return fmt.Errorf("lock the sandbox's owner: %w", err)
	}
	return nil
}

// LockOwnerCountLive is LockOwner followed by CountLive in one round trip, for a sandbox create
// (what a create holds the owner's lock for is what a burst of that user's creates waits for, one
// after another); lock_sandbox_owner (migration 000010) says why it is a function.
func (r *Sandboxes) LockOwnerCountLive(ctx context.Context, userID uuid.UUID) (int, error) {
	var live sql.NullInt64
	if err := r.db.NewRaw("SELECT lock_sandbox_owner(?)", userID).Scan(ctx, &live); err != nil {
		return 0, fmt.Errorf("lock the sandbox's owner and count their live sandboxes: %w", translate(err))
	}
	if !live.Valid {
		return 0, fmt.Errorf("lock the sandbox's owner: %w", ErrNotFound)
	}
	return int(live.Int64), nil
}

// lockUser locks a live user's row until the transaction ends (ErrNotFound when deleted).
func lockUser(ctx context.Context, db bun.IDB, userID uuid.UUID) error {
	var alive uuid.UUID
	return translate(db.NewRaw("SELECT id FROM users WHERE id = ? AND deleted_at IS NULL FOR NO KEY UPDATE", userID).Scan(ctx, &alive))
}
