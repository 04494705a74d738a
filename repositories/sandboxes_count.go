package repositories

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// LiveStatuses are the sandbox states that hold runtime resources and count against quotas.
var LiveStatuses = []string{"pending", "running", "paused", "stopping"}

// CountLiveSandboxes counts a user's sandboxes that hold runtime resources.
func CountLiveSandboxes(ctx context.Context, db bun.IDB, userID uuid.UUID) (int, error) {
	n, err := db.NewSelect().Table("sandboxes").
		Where("user_id = ?", userID).Where("status IN (?)", bun.In(LiveStatuses)).Count(ctx)
	return int(n), translate(err)
}
