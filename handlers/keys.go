package handlers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/identity/auth"
	"github.com/insien/orchestrator/internal/platform/apierror"
)

// Keys serves self-service API key management.
type Keys struct {
	auth *auth.Authenticator
	keys *apikeys.Service
}

// NewKeys builds the key endpoints.
func NewKeys(a *auth.Authenticator, k *apikeys.Service) *Keys { return &Keys{auth: a, keys: k} }

// Register mounts /api/keys.
func (h *Keys) Register(r gin.IRouter) {
	g := accountGroup(r, h.auth, "/api/keys")
	g.POST("", h.create)
	g.GET("", h.list)
	g.DELETE("/:id", h.revoke)
}

type createKeyRequest struct {
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// keyResponse is a key as users see it: masked, never the secret or its digest.
type keyResponse struct {
	ID         uuid.UUID  `json:"id"`
	Name       string     `json:"name"`
	Key        string     `json:"key,omitempty"` // only in the create response
	Prefix     string     `json:"prefix"`
	LastFour   string     `json:"last_four"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

func toKeyResponse(k apikeys.Key) keyResponse {
	return keyResponse{ID: k.ID, Name: k.Name, Prefix: k.Prefix, LastFour: k.LastFour, Scopes: k.Scopes,
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt}
}

func (h *Keys) create(c *gin.Context) {
	var req createKeyRequest
	if err := bindJSON(c, &req); err != nil {
		_ = c.Error(err)
		return
	}
	issued, err := h.keys.Create(c.Request.Context(), auth.From(c).UserID,
		apikeys.CreateInput{Name: req.Name, Scopes: req.Scopes, ExpiresAt: req.ExpiresAt})
	if err != nil {
		_ = c.Error(err)
		return
	}
	resp := toKeyResponse(issued.Key)
	resp.Key = issued.Secret
	c.JSON(http.StatusCreated, resp)
}

func (h *Keys) list(c *gin.Context) {
	keys, err := h.keys.List(c.Request.Context(), auth.From(c).UserID)
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]keyResponse, 0, len(keys))
	for _, k := range keys {
		out = append(out, toKeyResponse(k))
	}
	c.JSON(http.StatusOK, gin.H{"keys": out})
}

func (h *Keys) revoke(c *gin.Context) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		_ = c.Error(apierror.NotFound("API key"))
		return
	}
	if err := h.keys.Revoke(c.Request.Context(), auth.From(c).UserID, id); err != nil {
		_ = c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
}
