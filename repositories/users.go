package repositories

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// User is a row of users. The users service caches rows in Redis as this JSON.
type User struct {
	bun.BaseModel `bun:"table:users"`

	ID              uuid.UUID  `bun:"id,pk,type:uuid,default:gen_random_uuid()" json:"id"`
	ClerkUserID     *string    `bun:"clerk_user_id" json:"clerk_user_id"`
	Email           string     `bun:"email" json:"email"`
	FirstName       string     `bun:"first_name" json:"first_name"`
	LastName        string     `bun:"last_name" json:"last_name"`
	Username        string     `bun:"username" json:"username"`
	ImageURL        string     `bun:"image_url" json:"image_url"`
	CreatedAt       time.Time  `bun:"created_at,nullzero,default:now()" json:"created_at"`
	UpdatedAt       time.Time  `bun:"updated_at,nullzero,default:now()" json:"updated_at"`
	ProfileSyncedAt *time.Time `bun:"profile_synced_at" json:"profile_synced_at"`
	LastSeenAt      *time.Time `bun:"last_seen_at" json:"last_seen_at"`
	DeletedAt       *time.Time `bun:"deleted_at" json:"deleted_at"`
}

// Profile is the part of a user that Clerk owns.
type Profile struct {
	Email, FirstName, LastName, Username, ImageURL string
}

// Users reads and writes users.
type Users struct{ db bun.IDB }

// NewUsers builds the repository over db.
func NewUsers(db *bun.DB) *Users { return &Users{db: db} }

// With returns the repository bound to a transaction.
func (r *Users) With(db bun.IDB) *Users { return &Users{db: db} }

// ByID returns a user that is not deleted.
func (r *Users) ByID(ctx context.Context, id uuid.UUID) (*User, error) {
	u := new(User)
	err := r.db.NewSelect().Model(u).Where("id = ?", id).Where("deleted_at IS NULL").Scan(ctx)
	return u, translate(err)
}

// ByClerkID returns the user linked to a Clerk user id, deleted or not.
func (r *Users) ByClerkID(ctx context.Context, clerkUserID string) (*User, error) {
	u := new(User)
	err := r.db.NewSelect().Model(u).Where("clerk_user_id = ?", clerkUserID).Scan(ctx)
	return u, translate(err)
}

// UpsertClerk creates or updates the user of a Clerk id. A nil profile only ensures the row
// exists (Clerk unreachable); a profile marks it synced now. Deleted users stay deleted.
func (r *Users) UpsertClerk(ctx context.Context, clerkUserID string, p *Profile) (*User, error) {
	u := &User{ClerkUserID: &clerkUserID}
	q := r.db.NewInsert().Model(u).On("CONFLICT (clerk_user_id) DO UPDATE")
	if p == nil {
		q = q.Set("clerk_user_id = EXCLUDED.clerk_user_id") // no-op update so RETURNING yields the row
	} else {
		now := time.Now()
		u.Email, u.FirstName, u.LastName, u.Username, u.ImageURL = p.Email, p.FirstName, p.LastName, p.Username, p.ImageURL
		u.ProfileSyncedAt = &now
		q = q.Set("email = EXCLUDED.email").
			Set("first_name = EXCLUDED.first_name").
			Set("last_name = EXCLUDED.last_name").
			Set("username = EXCLUDED.username").
			Set("image_url = EXCLUDED.image_url").
			Set("profile_synced_at = EXCLUDED.profile_synced_at").
			Set("updated_at = now()")
	}
	err := q.Returning("*").Scan(ctx)
	return u, translate(err)
}

// LocalByEmail finds an operator-created user by email.
func (r *Users) LocalByEmail(ctx context.Context, email string) (*User, error) {
	u := new(User)
	err := r.db.NewSelect().Model(u).
		Where("lower(email) = lower(?)", email).
		Where("clerk_user_id IS NULL").Where("deleted_at IS NULL").Scan(ctx)
	return u, translate(err)
}

// CreateLocal creates an operator-managed user (no Clerk account).
func (r *Users) CreateLocal(ctx context.Context, email string) (*User, error) {
	u := &User{Email: email}
	_, err := r.db.NewInsert().Model(u).Returning("*").Exec(ctx)
	return u, translate(err)
}

// TouchLastSeen records activity.
func (r *Users) TouchLastSeen(ctx context.Context, id uuid.UUID) error {
	_, err := r.db.NewUpdate().Model((*User)(nil)).Set("last_seen_at = now()").Where("id = ?", id).Exec(ctx)
	return translate(err)
}

// SoftDelete marks the user of a Clerk id deleted and returns it.
func (r *Users) SoftDelete(ctx context.Context, clerkUserID string) (*User, error) {
	u := new(User)
	err := r.db.NewUpdate().Model(u).
		Set("deleted_at = coalesce(deleted_at, now())").Set("updated_at = now()").
		Where("clerk_user_id = ?", clerkUserID).Returning("*").Scan(ctx)
	return u, translate(err)
}

// LockForUpdate takes a row lock on the user, serializing per-user quota checks in a transaction.
func (r *Users) LockForUpdate(ctx context.Context, id uuid.UUID) error {
	var got uuid.UUID
	err := r.db.NewSelect().Model((*User)(nil)).Column("id").Where("id = ?", id).For("UPDATE").Scan(ctx, &got)
	return translate(err)
}
