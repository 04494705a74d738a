package users

import (
	"context"
	"errors"
	"net/mail"
	"strings"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/repositories"
)

// EnsureLocalUser finds or creates an operator-managed user (no Clerk account) by email, for
// machines without Clerk.
func EnsureLocalUser(ctx context.Context, repo *repositories.Users, email string) (*repositories.User, error) {
	email = strings.TrimSpace(email)
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email {
		return nil, apierror.Invalid("email", "%q is not an email address", email)
	}
	u, err := repo.LocalByEmail(ctx, email)
	if !errors.Is(err, repositories.ErrNotFound) {
		return u, err
	}
	u, err = repo.CreateLocal(ctx, email)
	if errors.Is(err, repositories.ErrConflict) { // created concurrently
		return repo.LocalByEmail(ctx, email)
	}
	return u, err
}
