package repositories

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// quotaLockKey names the advisory lock that serializes quota checks across replicas.
const quotaLockKey int64 = 0x73616e64626f78 // "sandbox"

// LockQuota takes the quota lock until the transaction the repository is bound to ends, so
// concurrent creates on every replica count and insert one at a time and can never exceed a
// quota between counting and inserting. Outside a transaction it would be released at once.
func (r *Sandboxes) LockQuota(ctx context.Context) error {
	if _, err := r.db.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", quotaLockKey); err != nil {
		return fmt.Errorf("take the sandbox quota lock: %w", translate(err))
	}
	return nil
}

// LockOwner share-locks a user who is to own a new sandbox until the transaction ends, so the
// create is ordered against a soft delete of the user that would otherwise miss it; ErrNotFound
// when the user does not exist or is deleted.
func (r *Sandboxes) LockOwner(ctx context.Context, userID uuid.UUID) error {
	var alive uuid.UUID
	if err := r.db.NewRaw("SELECT id FROM users WHERE id = ? AND deleted_at IS NULL FOR SHARE", userID).Scan(ctx, &alive); err != nil {
		return fmt.Errorf("lock the sandbox's owner: %w", translate(err))
	}
	return nil
}
