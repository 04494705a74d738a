package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/maypok86/otter/v2"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/sandbox/model"
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

// SetPortPublic opens (or closes) a port of a user's live sandbox to preview requests without a
// token, on every replica at once.
func (s *Service) SetPortPublic(ctx context.Context, userID, id uuid.UUID, port int, public bool) (*model.Sandbox, error) {
	sb, err := s.rows.SetPortPublic(ctx, userID, id, port, public)
	if errors.Is(err, repositories.ErrNotFound) {
		if _, err := s.owned(ctx, userID, id); err != nil {
			return nil, err
		}
		return nil, apierror.Conflict("sandbox_not_running", "sandbox %s has ended", id)
	}
	if err != nil {
		return nil, fmt.Errorf("setting port %d of sandbox %s public: %w", port, id, err)
	}
	s.changed(ctx, sb)
	return sb, nil
}

// OwnerOf returns the user a sandbox belongs to, for requests that arrive without a user (a
// public port's preview host); 404 when there is no such sandbox. Owners never change, so each
// replica keeps them.
func (s *Service) OwnerOf(ctx context.Context, id uuid.UUID) (uuid.UUID, error) {
	owner, err := s.owners.Get(ctx, id, otter.LoaderFunc[uuid.UUID, uuid.UUID](func(ctx context.Context, id uuid.UUID) (uuid.UUID, error) {
		return s.rows.OwnerOf(ctx, id)
	}))
	if errors.Is(err, repositories.ErrNotFound) {
		return uuid.Nil, apierror.NotFound("sandbox")
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("finding the owner of sandbox %s: %w", id, err)
	}
	return owner, nil
}
