package handlers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/identity/auth"
	"github.com/insien/orchestrator/internal/identity/users"
)

// Users serves the signed-in user's own account.
type Users struct {
	auth  *auth.Authenticator
	users *users.Service
}

// NewUsers builds the user endpoints.
func NewUsers(a *auth.Authenticator, u *users.Service) *Users { return &Users{auth: a, users: u} }

// accountGroup is where the routes of the signed-in user's own account live: a Clerk session
// only, so an API key can neither read the profile nor mint or revoke keys.
func accountGroup(r gin.IRouter, a *auth.Authenticator, path string) *gin.RouterGroup {
	return r.Group(path, a.Require(auth.KindSession))
}

// Register mounts GET /api/users/me.
func (h *Users) Register(r gin.IRouter) {
	accountGroup(r, h.auth, "/api/users").GET("/me", h.me)
}

type userResponse struct {
	ID            uuid.UUID    `json:"id"`
	ClerkUserID   *string      `json:"clerk_user_id"`
	Email         string       `json:"email"`
	FirstName     string       `json:"first_name"`
	LastName      string       `json:"last_name"`
	Username      string       `json:"username"`
	ImageURL      string       `json:"image_url"`
	CreatedAt     time.Time    `json:"created_at"`
	UpdatedAt     time.Time    `json:"updated_at"`
	LastSeenAt    *time.Time   `json:"last_seen_at"`
	ActiveAPIKeys int          `json:"active_api_keys"`
	LiveSandboxes int          `json:"running_sandboxes"`
	Limits        users.Limits `json:"limits"`
}

func (h *Users) me(c *gin.Context) {
	me, err := h.users.Me(c.Request.Context(), auth.From(c).UserID)
	if err != nil {
		_ = c.Error(err)
		return
	}
	u := me.User
	c.JSON(http.StatusOK, userResponse{
		ID: u.ID, ClerkUserID: u.ClerkUserID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		Username: u.Username, ImageURL: u.ImageURL, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
		LastSeenAt: u.LastSeenAt, ActiveAPIKeys: me.ActiveAPIKeys, LiveSandboxes: me.LiveSandboxes, Limits: me.Limits,
	})
}
