package apikeys

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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
	"github.com/insien/orchestrator/internal/platform/loop"
	"github.com/insien/orchestrator/repositories"
)

// Service issues, lists, revokes and verifies keys.
type Service struct {
	db    *bun.DB
	keys  *repositories.APIKeys
	users *repositories.Users
	cfg   config.Auth
	log   *zap.Logger

	// verified holds the keys Postgres vouched for, by hex digest (never the secret), so a
	// repeated request authenticates without a network round trip.
	verified *cache.Local[Identity]
	usage    *usage

	stop  context.CancelFunc
	loops sync.WaitGroup
}

// revokedChannel carries the hex digest of every revoked key to every replica.
const revokedChannel = "apikeys:revoked"

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

// NewService builds the key service; Start runs its background work.
func NewService(p Params) (*Service, error) {
	// A key's copy never outlives the key.
	verified, err := cache.NewLocal(p.Redis, revokedChannel, p.Auth.KeyCacheSize, p.Auth.KeyLocalTTL,
		func(id Identity) time.Duration {
			if id.ExpiresAt == nil {
				return p.Auth.KeyLocalTTL
			}
			return time.Until(*id.ExpiresAt)
		})
	if err != nil {
		return nil, fmt.Errorf("build the key cache: %w", err)
	}
	return &Service{db: p.DB, keys: p.Keys, users: p.Users, cfg: p.Auth, log: p.Log.Named("apikeys"),
		verified: verified, usage: newUsage(p.Keys, p.Auth.KeyCacheSize)}, nil
}

// Start listens for revocations announced by other replicas and starts writing key uses. It does
// not wait for Redis: until the subscription is up, the local lifetime bounds what is missed.
func (s *Service) Start(ctx context.Context) error {
	if err := s.verified.Start(ctx); err != nil {
		return fmt.Errorf("listen for revocations: %w", err)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.loops.Go(func() {
		loop.Every(loopCtx, s.cfg.LastUsedResolution, func(ctx context.Context) bool {
			if err := s.usage.flush(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("recording key use failed; retrying at the next flush", zap.Error(err))
			}
			return false
		})
	})
	return nil
}

// Stop ends the background work and writes the key uses not written yet.
func (s *Service) Stop(ctx context.Context) error {
	if s.stop != nil {
		s.stop()
		s.loops.Wait()
	}
	_ = s.verified.Stop(ctx)
	if err := s.usage.flush(ctx); err != nil {
		return fmt.Errorf("write key uses at shutdown: %w", err)
	}
	return nil
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

// List returns the user's keys, newest first. It writes this replica's pending key uses first,
// so a key used here shows it at once; a use on another replica shows within the resolution.
func (s *Service) List(ctx context.Context, userID uuid.UUID) ([]Key, error) {
	if err := s.usage.flush(ctx); err != nil {
		s.log.Warn("recording key use failed; retrying at the next flush", zap.Error(err))
	}
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

// Revoke revokes one of the user's keys; revoking twice succeeds, another user's key is not
// found. The revocation is in force once Postgres has it: this replica forgets the key at once,
// and the others when the announcement reaches them (within a second) or when their copy
// lapses (auth.key_local_ttl) if it does not, as while Redis is down. That is logged, not
// returned: the caller could do nothing about it.
func (s *Service) Revoke(ctx context.Context, userID, keyID uuid.UUID) error {
	key, err := s.keys.Revoke(ctx, userID, keyID)
	if errors.Is(err, repositories.ErrNotFound) {
		return apierror.NotFound("API key")
	}
	if err != nil {
		return fmt.Errorf("revoke key %s: %w", keyID, err)
	}
	s.forget(ctx, [][]byte{key.SecretHash})
	return nil
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

// RevokeAll revokes every key of a user (account deleted), with Revoke's guarantees.
func (s *Service) RevokeAll(ctx context.Context, userID uuid.UUID) error {
	digests, err := s.keys.RevokeAllForUser(ctx, userID)
	if err != nil {
		return fmt.Errorf("revoke every key of user %s: %w", userID, err)
	}
	s.forget(ctx, digests)
	return nil
}

// forget drops revoked keys from this replica's memory, then tells the others.
func (s *Service) forget(ctx context.Context, digests [][]byte) {
	keys := make([]string, 0, len(digests))
	for _, digest := range digests {
		keys = append(keys, hex.EncodeToString(digest))
	}
	if err := s.verified.Evict(ctx, keys...); err != nil {
		s.log.Warn("revoked keys could not be announced; other replicas drop them within auth.key_local_ttl",
			zap.Int("keys", len(digests)), zap.Duration("key_local_ttl", s.cfg.KeyLocalTTL), zap.Error(err))
	}
}

// Authenticate resolves a presented key. Mistyped keys are refused before any lookup; a key
// verified within auth.key_local_ttl is answered from memory, without a network round trip;
// otherwise Postgres decides. Expiry is checked on every request.
func (s *Service) Authenticate(ctx context.Context, raw string) (Identity, error) {
	if !WellFormed(raw) {
		return Identity{}, apierror.Unauthorized("invalid_api_key", "the API key is malformed or mistyped")
	}
	digest := Digest(raw)
	id, err := s.verified.Get(ctx, hex.EncodeToString(digest), func(ctx context.Context) (Identity, error) { return s.lookup(ctx, digest) })
	if err != nil {
		return Identity{}, err
	}
	now := time.Now()
	if id.ExpiresAt != nil && !now.Before(*id.ExpiresAt) {
		return Identity{}, errExpired
	}
	s.usage.record(id.KeyID, now)
	return id, nil
}

var errExpired = apierror.Unauthorized("api_key_expired", "the API key has expired")

// lookup reads a key from Postgres and says whether it may authenticate now.
func (s *Service) lookup(ctx context.Context, digest []byte) (Identity, error) {
	row, err := s.keys.ByHash(ctx, digest)
	if errors.Is(err, repositories.ErrNotFound) {
		return Identity{}, apierror.Unauthorized("invalid_api_key", "the API key is not valid")
	}
	if err != nil {
		return Identity{}, fmt.Errorf("look up key: %w", err)
	}
	key := fromRow(*row)
	switch key.State(time.Now()) {
	case StateRevoked:
		return Identity{}, apierror.Unauthorized("api_key_revoked", "the API key has been revoked")
	case StateExpired:
		return Identity{}, errExpired
	}
	return Identity{KeyID: key.ID, UserID: key.UserID, Scopes: key.Scopes, ExpiresAt: key.ExpiresAt}, nil
}
