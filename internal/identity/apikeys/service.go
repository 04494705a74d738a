package apikeys

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/cache"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/repositories"
)

// Service issues, lists, revokes and verifies keys.
type Service struct {
	db    *bun.DB
	keys  *repositories.APIKeys
	users *repositories.Users
	rdb   *redis.Client
	cfg   config.Auth
	log   *zap.Logger
}

// Params are the service's dependencies.
type Params struct {
	fx.In
	DB    *bun.DB
	Keys  *repositories.APIKeys
	Users *repositories.Users
	Redis *redis.Client
	Auth  config.Auth
	Log   *zap.Logger
}

// NewService builds the key service.
func NewService(p Params) *Service {
	return &Service{db: p.DB, keys: p.Keys, users: p.Users, rdb: p.Redis, cfg: p.Auth, log: p.Log.Named("apikeys")}
}

// Validate checks a request and returns it normalized (trimmed name, default and ordered scopes).
func Validate(in CreateInput) (CreateInput, error) {
	in.Name = strings.TrimSpace(in.Name)
	if n := utf8.RuneCountInString(in.Name); n < 1 || n > 100 {
		return in, apierror.Invalid("name", "name must be 1 to 100 characters")
	}
	scopes, err := normalizeScopes(in.Scopes)
	if err != nil {
		return in, fmt.Errorf("normalize scopes: %w", err)
	}
	in.Scopes = scopes
	if in.ExpiresAt != nil && !in.ExpiresAt.After(time.Now()) {
		return in, apierror.Invalid("expires_at", "expires_at must be in the future")
	}
	return in, nil
}

// Create validates the request and issues a key, holding the user's row lock so concurrent
// creates cannot exceed the per-user limit.
func (s *Service) Create(ctx context.Context, userID uuid.UUID, in CreateInput) (Issued, error) {
	in, err := Validate(in)
	if err != nil {
		return Issued{}, fmt.Errorf("validate key request: %w", err)
	}
	secret, err := Generate()
	if err != nil {
		return Issued{}, fmt.Errorf("generate key: %w", err)
	}
	row := repositories.APIKey{
		UserID: userID, Name: in.Name, Prefix: DisplayPrefix(secret), SecretHash: Digest(secret),
		LastFour: LastFour(secret), Scopes: in.Scopes, ExpiresAt: in.ExpiresAt,
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := s.users.With(tx).LockForUpdate(ctx, userID); err != nil {
			return fmt.Errorf("lock the user: %w", err)
		}
		active, err := s.keys.With(tx).CountActive(ctx, userID)
		if err != nil {
			return fmt.Errorf("count active keys: %w", err)
		}
		if active >= s.cfg.MaxKeysPerUser {
			return apierror.Conflict("key_limit_reached",
				"you already have %d active API keys, the maximum; revoke one first", active)
		}
		if err := s.keys.With(tx).Insert(ctx, &row); err != nil {
			return fmt.Errorf("insert key: %w", err)
		}
		return nil
	})
	if err != nil {
		return Issued{}, fmt.Errorf("store key for user %s: %w", userID, err)
	}
	return Issued{Key: fromRow(row), Secret: secret}, nil
}

// fromRow is the owner's view of a stored key.
func fromRow(r repositories.APIKey) Key {
	return Key{ID: r.ID, UserID: r.UserID, Name: r.Name, Prefix: r.Prefix, LastFour: r.LastFour, Scopes: r.Scopes,
		CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt}
}

func normalizeScopes(requested []string) ([]string, error) {
	if requested == nil {
		return slices.Clone(AllScopes), nil
	}
	if len(requested) == 0 {
		return nil, apierror.Invalid("scopes", "scopes must name at least one of %s, or be omitted", strings.Join(AllScopes, ", "))
	}
	var out []string
	for _, scope := range requested {
		if !slices.Contains(AllScopes, scope) {
			return nil, apierror.Invalid("scopes", "unknown scope %q (known: %s)", scope, strings.Join(AllScopes, ", "))
		}
		if !slices.Contains(out, scope) {
			out = append(out, scope)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(AllScopes, a) - slices.Index(AllScopes, b) })
	return out, nil
}

// List returns the user's keys, newest first.
func (s *Service) List(ctx context.Context, userID uuid.UUID) ([]Key, error) {
	rows, err := s.keys.ListByUser(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	keys := make([]Key, 0, len(rows))
	for _, r := range rows {
		keys = append(keys, fromRow(r))
	}
	return keys, nil
}

// CountActive counts the user's usable keys.
func (s *Service) CountActive(ctx context.Context, userID uuid.UUID) (int, error) {
	n, err := s.keys.CountActive(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("count active keys: %w", err)
	}
	return n, nil
}

// Revoke revokes one of the user's keys; revoking twice succeeds, another user's key is not found.
func (s *Service) Revoke(ctx context.Context, userID, keyID uuid.UUID) error {
	key, err := s.keys.Revoke(ctx, userID, keyID)
	if errors.Is(err, repositories.ErrNotFound) {
		return apierror.NotFound("API key")
	}
	if err != nil {
		return fmt.Errorf("revoke key %s: %w", keyID, err)
	}
	return s.evict(ctx, key.SecretHash)
}

// RevokeByID revokes a key whoever owns it, for the operator's command line. An unknown id
// wraps repositories.ErrNotFound.
func (s *Service) RevokeByID(ctx context.Context, keyID uuid.UUID) error {
	key, err := s.keys.ByID(ctx, keyID)
	if err != nil {
		return fmt.Errorf("find key %s: %w", keyID, err)
	}
	return s.Revoke(ctx, key.UserID, keyID)
}

// RevokeAll revokes every key of a user (account deleted).
func (s *Service) RevokeAll(ctx context.Context, userID uuid.UUID) error {
	hashes, err := s.keys.RevokeAllForUser(ctx, userID)
	if err != nil {
		return fmt.Errorf("revoke every key of user %s: %w", userID, err)
	}
	for _, hash := range hashes {
		if err := s.evict(ctx, hash); err != nil {
			return err
		}
	}
	return nil
}

// Authenticate resolves a presented key. Mistyped keys are refused before any lookup; known keys
// come from Redis when cached, else from Postgres.
func (s *Service) Authenticate(ctx context.Context, raw string) (Identity, error) {
	if !WellFormed(raw) {
		return Identity{}, apierror.Unauthorized("invalid_api_key", "the API key is malformed or mistyped")
	}
	hash := Digest(raw)
	now := time.Now()
	if id, ok := s.cached(ctx, hash); ok {
		if id.ExpiresAt != nil && !now.Before(*id.ExpiresAt) {
			return Identity{}, apierror.Unauthorized("api_key_expired", "the API key has expired")
		}
		s.touch(ctx, id.KeyID)
		return id, nil
	}
	row, err := s.keys.ByHash(ctx, hash)
	if errors.Is(err, repositories.ErrNotFound) {
		return Identity{}, apierror.Unauthorized("invalid_api_key", "the API key is not valid")
	}
	if err != nil {
		return Identity{}, fmt.Errorf("look up key: %w", err)
	}
	key := fromRow(*row)
	switch key.State(now) {
	case StateRevoked:
		return Identity{}, apierror.Unauthorized("api_key_revoked", "the API key has been revoked")
	case StateExpired:
		return Identity{}, apierror.Unauthorized("api_key_expired", "the API key has expired")
	}
	id := Identity{KeyID: key.ID, UserID: key.UserID, Scopes: key.Scopes, ExpiresAt: key.ExpiresAt}
	s.remember(ctx, hash, id, now)
	s.touch(ctx, id.KeyID)
	return id, nil
}

func cacheKey(hash []byte) string { return "apikey:" + hex.EncodeToString(hash) }

func (s *Service) cached(ctx context.Context, hash []byte) (Identity, bool) {
	return cache.Get[Identity](ctx, s.rdb, cacheKey(hash))
}

func (s *Service) remember(ctx context.Context, hash []byte, id Identity, now time.Time) {
	ttl := s.cfg.KeyCacheTTL
	if id.ExpiresAt != nil && id.ExpiresAt.Sub(now) < ttl {
		ttl = id.ExpiresAt.Sub(now)
	}
	if err := cache.Set(ctx, s.rdb, cacheKey(hash), id, ttl); err != nil {
		s.log.Debug("caching key failed", zap.Error(err))
	}
}

// evict removes a key from the cache on every replica at once, and blocks re-caching for as long
// as the cache could hold it, so a lookup racing the revocation cannot bring it back.
func (s *Service) evict(ctx context.Context, hash []byte) error {
	if err := cache.Invalidate(ctx, s.rdb, cacheKey(hash), s.cfg.KeyCacheTTL); err != nil {
		// The row is revoked; only the cache may still hold the key. Say so: the caller must
		// not believe the key is dead everywhere.
		return apierror.Unavailable("cache_unavailable", "the key is revoked but could not be evicted from the cache yet; retry").WithCause(err)
	}
	return nil
}

// touch writes last_used_at at most once per resolution per key, across replicas.
func (s *Service) touch(ctx context.Context, keyID uuid.UUID) {
	first, err := s.rdb.SetNX(ctx, "apikey:used:"+keyID.String(), 1, s.cfg.LastUsedResolution).Result()
	if err != nil || !first {
		return
	}
	if err := s.keys.TouchLastUsed(ctx, keyID); err != nil {
		s.log.Warn("recording key use failed", zap.Error(err))
	}
}
