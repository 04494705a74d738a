package apikeys

import (
	"time"

	"github.com/google/uuid"
)

// Scopes a key may carry. A key without explicit scopes gets all of them.
const (
	ScopeSandboxesRead  = "sandboxes:read"
	ScopeSandboxesWrite = "sandboxes:write"
)

// AllScopes lists every scope, in display order.
var AllScopes = []string{ScopeSandboxesRead, ScopeSandboxesWrite}

// Key is an API key as its owner may see it: masked, never the secret nor its digest.
type Key struct {
	ID, UserID             uuid.UUID
	Name, Prefix, LastFour string
	Scopes                 []string
	CreatedAt              time.Time
	LastUsedAt, ExpiresAt  *time.Time
	RevokedAt              *time.Time
}

// The states of a key, as State reports them.
const (
	StateActive  = "active"
	StateRevoked = "revoked"
	StateExpired = "expired"
)

// State says whether the key can authenticate at time now, and if not, why.
func (k Key) State(now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return StateRevoked
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return StateExpired
	}
	return StateActive
}

// Issued is a newly created key; Secret is shown to the user once and never stored.
type Issued struct {
	Key    Key
	Secret string
}

// CreateInput is what a user asks for.
type CreateInput struct {
	Name      string
	Scopes    []string
	ExpiresAt *time.Time
}

// Identity is who an authenticated key speaks for. It is what Redis caches, as this JSON.
type Identity struct {
	KeyID     uuid.UUID  `json:"id"`
	UserID    uuid.UUID  `json:"user_id"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}
