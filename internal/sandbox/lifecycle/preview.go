package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/repositories"
)

// RevokePreviewURLs makes every preview URL issued for a user's sandbox open nothing: the
// sandbox moves to a new URL generation, and its view is evicted on every replica at once.
func (s *Service) RevokePreviewURLs(ctx context.Context, userID, id uuid.UUID) error {
	sb, err := s.rows.RevokePreviewURLs(ctx, userID, id)
	if errors.Is(err, repositories.ErrNotFound) {
		return apierror.NotFound("sandbox")
	}
	if err != nil {
		return fmt.Errorf("revoking the preview URLs of sandbox %s: %w", id, err)
	}
	s.changed(ctx, sb)
	return nil
}
