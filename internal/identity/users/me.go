package users

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/repositories"
)

// Limits are what a user may consume.
type Limits struct {
	MaxAPIKeys             int     `json:"max_api_keys"`
	MaxConcurrentSandboxes int     `json:"max_concurrent_sandboxes"`
	MaxCPU                 float64 `json:"max_cpu"`
	MaxMemoryMB            int64   `json:"max_memory_mb"`
	MaxLifetimeSeconds     int64   `json:"max_lifetime_seconds"`
}

// LimitsFrom reads the limits from configuration (the same for every user today).
func LimitsFrom(auth config.Auth, sandbox config.Sandbox) Limits {
	return Limits{
		MaxAPIKeys:             auth.MaxKeysPerUser,
		MaxConcurrentSandboxes: sandbox.MaxPerUser,
		MaxCPU:                 sandbox.MaxCPU,
		MaxMemoryMB:            sandbox.MaxMemoryMB,
		MaxLifetimeSeconds:     int64(sandbox.MaxLifetime / time.Second),
	}
}

// Me is a user's own view of their account.
type Me struct {
	User          *repositories.User
	ActiveAPIKeys int
	LiveSandboxes int
	Limits        Limits
}

// Me returns the profile with usage counts and limits.
func (s *Service) Me(ctx context.Context, userID uuid.UUID) (Me, error) {
	u, err := s.users.ByID(ctx, userID)
	if err != nil {
		return Me{}, err
	}
	keys, err := s.keys.CountActive(ctx, userID)
	if err != nil {
		return Me{}, err
	}
	live, err := s.sandboxRows.CountLive(ctx, userID)
	if err != nil {
		return Me{}, err
	}
	return Me{User: u, ActiveAPIKeys: keys, LiveSandboxes: live, Limits: s.limits}, nil
}
