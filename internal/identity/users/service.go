// Package users keeps the users table in step with Clerk: created on a user's first request,
// refreshed when stale, updated and deleted by Clerk's webhooks.
package users

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/identity/clerkauth"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/cache"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/repositories"
)

// cacheTTL bounds how long Redis serves a user row; it also paces last_seen_at writes.
const cacheTTL = time.Minute

// ProfileSource is Clerk's Backend API, as far as this service needs it.
type ProfileSource interface {
	Enabled() bool
	Get(ctx context.Context, clerkUserID string) (clerkauth.Profile, error)
}

// SandboxDestroyer ends every sandbox of a deleted user: the lifecycle service, absent from graphs
// that run no sandboxes (the key commands).
type SandboxDestroyer interface {
	DestroyAllForUser(ctx context.Context, userID uuid.UUID, reason string) error
}

// Service resolves and maintains users.
type Service struct {
	users       *repositories.Users
	sandboxRows *repositories.Sandboxes
	keys        *apikeys.Service
	profiles    ProfileSource
	destroyer   SandboxDestroyer
	rdb         *redis.Client
	cfg         config.Clerk
	limits      Limits
	log         *zap.Logger

	mu           sync.Mutex
	clerkFailing bool // logged once per outage, not per request
}

// Params are the service's dependencies; the sandbox destroyer is optional.
type Params struct {
	fx.In
	Users     *repositories.Users
	Sandboxes *repositories.Sandboxes
	Keys      *apikeys.Service
	Profiles  *clerkauth.Users
	Destroyer SandboxDestroyer `optional:"true"`
	Redis     *redis.Client
	Clerk     config.Clerk
	Auth      config.Auth
	Sandbox   config.Sandbox
	Log       *zap.Logger
}

// NewService builds the user service.
func NewService(p Params) *Service {
	return &Service{users: p.Users, sandboxRows: p.Sandboxes, keys: p.Keys, profiles: p.Profiles, destroyer: p.Destroyer,
		rdb: p.Redis, cfg: p.Clerk, limits: limitsFrom(p.Auth, p.Sandbox), log: p.Log.Named("users")}
}

// fromRow is a stored user as the service hands it out.
func fromRow(r *repositories.User) *User {
	return &User{
		ID: r.ID, ClerkUserID: r.ClerkUserID, Email: r.Email, FirstName: r.FirstName, LastName: r.LastName,
		Username: r.Username, ImageURL: r.ImageURL, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, LastSeenAt: r.LastSeenAt,
	}
}

// profileRow is what the users table stores of a Clerk profile.
func profileRow(p clerkauth.Profile) *repositories.Profile {
	return &repositories.Profile{Email: p.Email, FirstName: p.FirstName, LastName: p.LastName, Username: p.Username, ImageURL: p.ImageURL}
}

func clerkCacheKey(clerkUserID string) string { return "user:clerk:" + clerkUserID }

// EnsureClerkUser returns the user of a verified Clerk session, creating it on first sight and
// refreshing its profile from Clerk when stale. If Clerk cannot be reached, what is stored serves.
func (s *Service) EnsureClerkUser(ctx context.Context, clerkUserID string) (*User, error) {
	cached := cache.Read[repositories.User](ctx, s.rdb, clerkCacheKey(clerkUserID))
	if row, ok := cached.Value(); ok {
		return checkActive(&row)
	}
	row, err := s.users.ByClerkID(ctx, clerkUserID)
	switch {
	case errors.Is(err, repositories.ErrNotFound):
		row = nil
	case err != nil:
		return nil, fmt.Errorf("read user by Clerk id: %w", err)
	}
	if row != nil && row.DeletedAt != nil {
		return checkActive(row)
	}
	if row == nil || s.stale(row) {
		if fresh, err := s.sync(ctx, clerkUserID, row == nil); err != nil {
			return nil, fmt.Errorf("sync the Clerk profile: %w", err)
		} else if fresh != nil {
			row = fresh
		}
	}
	if err := s.users.TouchLastSeen(ctx, row.ID); err != nil {
		s.log.Warn("recording last_seen_at failed", zap.Error(err))
	}
	// The row as JSON, so replicas of every version share entries.
	if err := cached.Fill(ctx, s.rdb, *row, cacheTTL); err != nil {
		s.log.Debug("caching user failed", zap.Error(err))
	}
	return checkActive(row)
}

func checkActive(row *repositories.User) (*User, error) {
	if row.DeletedAt != nil {
		return nil, apierror.AccountDeleted()
	}
	return fromRow(row), nil
}

func (s *Service) stale(row *repositories.User) bool {
	return row.ProfileSyncedAt == nil || time.Since(*row.ProfileSyncedAt) > s.cfg.ProfileTTL
}

// sync fetches the profile from Clerk and stores it. When Clerk fails, a missing row is still
// created (so the request succeeds) and a stored row is left as it is (nil, nil).
func (s *Service) sync(ctx context.Context, clerkUserID string, missing bool) (*repositories.User, error) {
	var profile *repositories.Profile
	if s.profiles.Enabled() {
		p, err := s.profiles.Get(ctx, clerkUserID)
		s.noteClerk(err)
		if err == nil {
			profile = profileRow(p)
		}
	}
	if profile == nil && !missing {
		return nil, nil
	}
	row, err := s.users.UpsertClerk(ctx, clerkUserID, profile)
	if err != nil {
		return nil, fmt.Errorf("store the user: %w", err)
	}
	return row, nil
}

func (s *Service) noteClerk(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil && !s.clerkFailing:
		s.clerkFailing = true
		s.log.Warn("Clerk's Backend API failed; serving stored profiles until it answers", zap.Error(err))
	case err == nil && s.clerkFailing:
		s.clerkFailing = false
		s.log.Info("Clerk's Backend API answers again")
	}
}

func (s *Service) forget(ctx context.Context, clerkUserID string) error {
	if err := cache.Invalidate(ctx, s.rdb, clerkCacheKey(clerkUserID), cache.InvalidationWindow); err != nil {
		return fmt.Errorf("evict the cached user: %w", err)
	}
	return nil
}
