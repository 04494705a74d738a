package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/identity/clerkauth"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/repositories"
)

// Apply performs what a Clerk event means for our users. Unknown types are ignored.
func (s *Service) Apply(ctx context.Context, ev Event) error {
	switch ev.Type {
	case "user.created", "user.updated":
		p, err := clerkauth.ParseUserPayload(ev.Data)
		if err != nil || p.ClerkUserID == "" {
			return apierror.BadRequest("invalid_payload", "the event's data is not a Clerk user")
		}
		if _, err := s.users.UpsertClerk(ctx, p.ClerkUserID, profileRow(p)); err != nil {
			return fmt.Errorf("store the user: %w", err)
		}
		return s.forget(ctx, p.ClerkUserID)
	case "user.deleted":
		var deleted struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(ev.Data, &deleted); err != nil || deleted.ID == "" {
			return apierror.BadRequest("invalid_payload", "the event's data has no user id")
		}
		return s.deleteUser(ctx, deleted.ID)
	default:
		s.log.Debug("ignoring Clerk event", zap.String("type", ev.Type))
		return nil
	}
}

// deleteUser soft-deletes the user, revokes every key and ends every sandbox. Each step is
// idempotent, so a retried delivery finishes what a failed one started.
func (s *Service) deleteUser(ctx context.Context, clerkUserID string) error {
	u, err := s.users.SoftDelete(ctx, clerkUserID)
	if errors.Is(err, repositories.ErrNotFound) {
		return nil // never seen: nothing to delete
	}
	if err != nil {
		return fmt.Errorf("mark the user deleted: %w", err)
	}
	if err := s.forget(ctx, clerkUserID); err != nil {
		return err
	}
	if err := s.keys.RevokeAll(ctx, u.ID); err != nil {
		return fmt.Errorf("revoke the deleted user's keys: %w", err)
	}
	if s.destroyer == nil {
		return nil
	}
	if err := s.destroyer.DestroyAllForUser(ctx, u.ID, "user_deleted"); err != nil {
		return fmt.Errorf("end the deleted user's sandboxes: %w", err)
	}
	return nil
}
