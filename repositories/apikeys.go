package repositories

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// APIKey is a row of api_keys. SecretHash never leaves the apikeys service, which maps rows to
// its own Key.
type APIKey struct {
	bun.BaseModel `bun:"table:api_keys"`

	ID         uuid.UUID  `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	UserID     uuid.UUID  `bun:"user_id,type:uuid"`
	Name       string     `bun:"name"`
	Prefix     string     `bun:"prefix"`
	SecretHash []byte     `bun:"secret_hash"`
	LastFour   string     `bun:"last_four"`
	Scopes     []string   `bun:"scopes,array"`
	CreatedAt  time.Time  `bun:"created_at,nullzero,default:now()"`
	LastUsedAt *time.Time `bun:"last_used_at"`
	ExpiresAt  *time.Time `bun:"expires_at"`
	RevokedAt  *time.Time `bun:"revoked_at"`
}

// APIKeys reads and writes api_keys.
type APIKeys struct{ db bun.IDB }

// NewAPIKeys builds the repository over db.
func NewAPIKeys(db *bun.DB) *APIKeys { return &APIKeys{db: db} }

// With returns the repository bound to a transaction.
func (r *APIKeys) With(db bun.IDB) *APIKeys { return &APIKeys{db: db} }

// Insert stores a new key.
func (r *APIKeys) Insert(ctx context.Context, k *APIKey) error {
	_, err := stampInsert(ctx, r.db.NewInsert().Model(k)).Returning("*").Exec(ctx)
	return translate(err)
}

// CountActive counts a user's keys that are neither revoked nor expired.
func (r *APIKeys) CountActive(ctx context.Context, userID uuid.UUID) (int, error) {
	n, err := r.db.NewSelect().Model((*APIKey)(nil)).
		Where("user_id = ?", userID).Where("revoked_at IS NULL").
		Where("expires_at IS NULL OR expires_at > now()").Count(ctx)
	return int(n), translate(err)
}

// ListByUser returns a user's keys, newest first.
func (r *APIKeys) ListByUser(ctx context.Context, userID uuid.UUID) ([]APIKey, error) {
	var keys []APIKey
	err := r.db.NewSelect().Model(&keys).Where("user_id = ?", userID).
		OrderExpr("created_at DESC, id DESC").Scan(ctx)
	return keys, translate(err)
}

// ByHash finds the key with this digest whose user is not deleted.
func (r *APIKeys) ByHash(ctx context.Context, hash []byte) (*APIKey, error) {
	k := new(APIKey)
	err := r.db.NewSelect().Model(k).
		Where("secret_hash = ?", hash).
		Where("EXISTS (SELECT 1 FROM users u WHERE u.id = api_key.user_id AND u.deleted_at IS NULL)").
		Scan(ctx)
	return k, translate(err)
}

// Revoke marks one of the user's keys revoked (keeping the first revocation time) and returns it.
func (r *APIKeys) Revoke(ctx context.Context, userID, keyID uuid.UUID) (*APIKey, error) {
	k := new(APIKey)
	err := stampUpdate(ctx, r.db.NewUpdate().Model(k)).
		Set("revoked_at = coalesce(revoked_at, now())").
		Where("id = ?", keyID).Where("user_id = ?", userID).
		Returning("*").Scan(ctx)
	return k, translate(err)
}

// RevokeAllForUser revokes every active key of a user and returns the digests revoked.
func (r *APIKeys) RevokeAllForUser(ctx context.Context, userID uuid.UUID) ([][]byte, error) {
	var hashes [][]byte
	err := stampUpdate(ctx, r.db.NewUpdate().Model((*APIKey)(nil))).
		Set("revoked_at = now()").
		Where("user_id = ?", userID).Where("revoked_at IS NULL").
		Returning("secret_hash").Scan(ctx, &hashes)
	return hashes, translate(err)
}

// TouchLastUsed records when each key was last used, in one statement however many keys there
// are. A time older than the recorded one is ignored: replicas flush in any order.
func (r *APIKeys) TouchLastUsed(ctx context.Context, uses map[uuid.UUID]time.Time) error {
	if len(uses) == 0 {
		return nil
	}
	ids := make([]string, 0, len(uses))
	times := make([]time.Time, 0, len(uses))
	for id, at := range uses {
		ids = append(ids, id.String())
		times = append(times, at)
	}
	_, err := r.db.NewRaw(`UPDATE api_keys AS k SET last_used_at = u.at
		FROM unnest(?::uuid[], ?::timestamptz[]) AS u(id, at)
		WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`,
		pgdialect.Array(ids), pgdialect.Array(times)).Exec(ctx)
	return translate(err)
}

// ByID returns a key by id, whoever owns it (operator commands).
func (r *APIKeys) ByID(ctx context.Context, id uuid.UUID) (*APIKey, error) {
	k := new(APIKey)
	err := r.db.NewSelect().Model(k).Where("id = ?", id).Scan(ctx)
	return k, translate(err)
}
