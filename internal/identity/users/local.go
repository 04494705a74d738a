package users

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/repositories"
)

// EnsureLocal finds or creates an operator-managed user (no Clerk account) by email, for
// machines without Clerk.
func (s *Service) EnsureLocal(ctx context.Context, email string) (*User, error) {
	email = strings.TrimSpace(email)
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email {
		return nil, apierror.Invalid("email", "%q is not an email address", email)
	}
	u, err := s.LocalByEmail(ctx, email)
	if !errors.Is(err, repositories.ErrNotFound) {
		return u, err
	}
	row, err := s.users.CreateLocal(ctx, email)
	if errors.Is(err, repositories.ErrConflict) { // created concurrently
		return s.LocalByEmail(ctx, email)
	}
	if err != nil {
		return nil, fmt.Errorf("create local user: %w", err)
	}
	return fromRow(row), nil
}

// LocalByEmail finds an operator-managed user; an unknown email wraps repositories.ErrNotFound.
func (s *Service) LocalByEmail(ctx context.Context, email string) (*User, error) {
	row, err := s.users.LocalByEmail(ctx, email)
	if err != nil {
		return nil, fmt.Errorf("find local user: %w", err)
	}
	return fromRow(row), nil
}
