// Package users keeps the users table in step with Clerk: created on a user's first request,
// refreshed when stale, updated and deleted by Clerk's webhooks.
package users

import (
	"context"
	"errors"
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

// SandboxDestroyer ends every sandbox of a deleted user (provided once sandboxes exist).
type SandboxDestroyer interface {
	DestroyAllForUser(ctx context.Context, userID uuid.UUID, reason string) error
}

// Service resolves and maintains users.
type Service struct {
	users       *repositories.Users
	sandboxRows *repositories.Sandboxes
	keys        *apikeys.Service
	clerk       ProfileSource
	sandboxes   SandboxDestroyer
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
	Clerk     *clerkauth.Users
	Destroyer SandboxDestroyer `optional:"true"`
	Redis     *redis.Client
	Clerkcfg  config.Clerk
	Auth      config.Auth
	Sandbox   config.Sandbox
	Log       *zap.Logger
}

// NewService builds the user service from its Fx parameters.
func NewService(p Params) *Service {
	return New(p.Users, p.Sandboxes, p.Keys, p.Clerk, p.Destroyer, p.Redis, p.Clerkcfg, LimitsFrom(p.Auth, p.Sandbox), p.Log)
}

// New builds the user service; destroyer may be nil.
func New(users *repositories.Users, sandboxRows *repositories.Sandboxes, keys *apikeys.Service, clerk ProfileSource,
	destroyer SandboxDestroyer, rdb *redis.Client, cfg config.Clerk, limits Limits, log *zap.Logger) *Service {
	return &Service{users: users, sandboxRows: sandboxRows, keys: keys, clerk: clerk, sandboxes: destroyer,
		rdb: rdb, cfg: cfg, limits: limits, log: log.Named("users")}
}

func clerkCacheKey(clerkUserID string) string { return "user:clerk:" + clerkUserID }

// EnsureClerkUser returns the user of a verified Clerk session, creating it on first sight and
// refreshing its profile from Clerk when stale. If Clerk cannot be reached, what is stored serves.
func (s *Service) EnsureClerkUser(ctx context.Context, clerkUserID string) (*repositories.User, error) {
	if u, ok := s.cachedUser(ctx, clerkUserID); ok {
		return s.checkActive(u)
	}
	u, err := s.users.ByClerkID(ctx, clerkUserID)
	switch {
	case errors.Is(err, repositories.ErrNotFound):
		u = nil
	case err != nil:
		return nil, err
	}
	if u != nil && u.DeletedAt != nil {
		return s.checkActive(u)
	}
	if u == nil || s.stale(u) {
		if fresh, err := s.sync(ctx, clerkUserID, u == nil); err != nil {
			return nil, err
		} else if fresh != nil {
			u = fresh
		}
	}
	if err := s.users.TouchLastSeen(ctx, u.ID); err != nil {
		s.log.Warn("recording last_seen_at failed", zap.Error(err))
	}
	s.cacheUser(ctx, clerkUserID, u)
	return s.checkActive(u)
}

func (s *Service) checkActive(u *repositories.User) (*repositories.User, error) {
	if u.DeletedAt != nil {
		return nil, apierror.Unauthorized("account_deleted", "this account has been deleted")
	}
	return u, nil
}

func (s *Service) stale(u *repositories.User) bool {
	return u.ProfileSyncedAt == nil || time.Since(*u.ProfileSyncedAt) > s.cfg.ProfileTTL
}

// sync fetches the profile from Clerk and stores it. When Clerk fails, a missing row is still
// created (so the request succeeds) and a stored row is left as it is (nil, nil).
func (s *Service) sync(ctx context.Context, clerkUserID string, missing bool) (*repositories.User, error) {
	var profile *repositories.Profile
	if s.clerk.Enabled() {
		p, err := s.clerk.Get(ctx, clerkUserID)
		s.noteClerk(err)
		if err == nil {
			profile = &repositories.Profile{Email: p.Email, FirstName: p.FirstName, LastName: p.LastName, Username: p.Username, ImageURL: p.ImageURL}
		}
	}
	if profile == nil && !missing {
		return nil, nil
	}
	return s.users.UpsertClerk(ctx, clerkUserID, profile)
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

func (s *Service) cachedUser(ctx context.Context, clerkUserID string) (*repositories.User, bool) {
	u, ok := cache.Get[repositories.User](ctx, s.rdb, clerkCacheKey(clerkUserID))
	return &u, ok
}

func (s *Service) cacheUser(ctx context.Context, clerkUserID string, u *repositories.User) {
	if err := cache.Set(ctx, s.rdb, clerkCacheKey(clerkUserID), u, cacheTTL); err != nil {
		s.log.Debug("caching user failed", zap.Error(err))
	}
}

func (s *Service) forget(ctx context.Context, clerkUserID string) error {
	return cache.Invalidate(ctx, s.rdb, clerkCacheKey(clerkUserID), cache.InvalidationWindow)
}
