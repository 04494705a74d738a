package users

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// Me returns the profile with usage counts and limits.
func (s *Service) Me(ctx context.Context, userID uuid.UUID) (Me, error) {
	row, err := s.users.ByID(ctx, userID)
	if err != nil {
		return Me{}, fmt.Errorf("read user %s: %w", userID, err)
	}
	keys, err := s.keys.CountActive(ctx, userID)
	if err != nil {
		return Me{}, fmt.Errorf("count the user's keys: %w", err)
	}
	live, err := s.sandboxRows.CountLive(ctx, userID)
	if err != nil {
		return Me{}, fmt.Errorf("count live sandboxes: %w", err)
	}
	return Me{User: fromRow(row), ActiveAPIKeys: keys, LiveSandboxes: live, Limits: s.limits}, nil
}
