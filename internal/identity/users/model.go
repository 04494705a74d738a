package users

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/config"
)

// User is a person the service knows, through Clerk or created by an operator; the service hands
// out only users that are not deleted.
type User struct {
	ID          uuid.UUID
	ClerkUserID *string // nil for a user an operator created
	Email       string
	FirstName   string
	LastName    string
	Username    string
	ImageURL    string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	LastSeenAt  *time.Time
}

// Limits are what a user may consume.
type Limits struct {
	MaxAPIKeys             int     `json:"max_api_keys"`
	MaxConcurrentSandboxes int     `json:"max_concurrent_sandboxes"`
	MaxCPU                 float64 `json:"max_cpu"`
	MaxMemoryMB            int64   `json:"max_memory_mb"`
	MaxLifetimeSeconds     int64   `json:"max_lifetime_seconds"`
}

// limitsFrom reads the limits from configuration (the same for every user today).
func limitsFrom(auth config.Auth, sandbox config.Sandbox) Limits {
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
	User          *User
	ActiveAPIKeys int
	LiveSandboxes int
	Limits        Limits
}

// Event is a Clerk webhook delivery, already verified.
type Event struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}
