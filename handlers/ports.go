package handlers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/identity/auth"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/middleware"
	"github.com/insien/orchestrator/internal/sandbox/ports"
)

// portRoute is every request to a sandbox's port through the API. The URL endpoints live under
// it too (a router cannot hold /url beside a catch-all): POST and DELETE of exactly
// .../ports/{port}/url are the orchestrator's, so an app's own /url takes those two methods only
// through its preview host.
const portRoute = "/api/sandboxes/:id/ports/:port/*path"

// PortBodyLimits let requests to an app carry bodies as large as a file upload.
func PortBodyLimits(cfg config.Sandbox) []middleware.RouteLimit {
	var limits []middleware.RouteLimit
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		limits = append(limits, middleware.RouteLimit{Method: method, Path: portRoute, Limit: cfg.MaxUploadBytes})
	}
	return limits
}

// Ports serves sandbox ports through the API and issues their preview URLs.
type Ports struct {
	auth  *auth.Authenticator
	ports *ports.Service
}

// NewPorts builds the endpoints.
func NewPorts(a *auth.Authenticator, p *ports.Service) *Ports { return &Ports{auth: a, ports: p} }

// Register mounts /api/sandboxes/{id}/ports/{port}/...
func (h *Ports) Register(r gin.IRouter) {
	g, _, write := sandboxGroup(r, h.auth, "")
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		g.Handle(method, portRoute, write, h.serve)
	}
	g.PUT("/api/sandboxes/:id/ports/:port", write, h.setPublic)
}

func (h *Ports) serve(c *gin.Context) {
	id, port, ok := h.sandboxPort(c)
	if !ok {
		return
	}
	userID := auth.From(c).UserID
	switch path := c.Param("path"); {
	case path == "/url" && c.Request.Method == http.MethodPost:
		h.issueURL(c, id, port)
	case path == "/url" && c.Request.Method == http.MethodDelete:
		if err := h.ports.RevokeURLs(c.Request.Context(), userID, id); err != nil {
			_ = c.Error(err)
			return
		}
		c.Status(http.StatusNoContent)
	default:
		sb, err := h.ports.Target(c.Request.Context(), userID, id)
		if err != nil {
			_ = c.Error(err)
			return
		}
		ctx := middleware.Untimed(c)
		err = h.ports.Forward(c.Writer, c.Request.WithContext(ctx), ports.Request{Sandbox: sb, Port: port, Path: path})
		if err != nil {
			_ = c.Error(err)
		}
	}
}

// sandboxPort reads the sandbox id and the port from the path; false when either is invalid (the
// error is recorded).
func (h *Ports) sandboxPort(c *gin.Context) (uuid.UUID, int, bool) {
	id, ok := sandboxID(c)
	if !ok {
		return uuid.Nil, 0, false
	}
	port, err := h.ports.ParsePort(c.Param("port"))
	if err != nil {
		_ = c.Error(err)
		return uuid.Nil, 0, false
	}
	return id, port, true
}

type issueURLRequest struct {
	ExpiresInSeconds *int `json:"expires_in_seconds"`
}

func (h *Ports) issueURL(c *gin.Context, id uuid.UUID, port int) {
	var req issueURLRequest
	if err := bindOptionalJSON(c, &req); err != nil {
		_ = c.Error(err)
		return
	}
	var lifetime time.Duration
	if req.ExpiresInSeconds != nil {
		if *req.ExpiresInSeconds <= 0 {
			_ = c.Error(apierror.Invalid("expires_in_seconds", "expires_in_seconds must be positive"))
			return
		}
		lifetime = time.Duration(*req.ExpiresInSeconds) * time.Second
	}
	u, err := h.ports.IssueURL(c.Request.Context(), auth.From(c).UserID, id, port, lifetime)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusCreated, u)
}

type portSettings struct {
	Port   int   `json:"port"`
	Public *bool `json:"public"`
}

// setPublic opens a port's preview host to requests without a token, or closes it again.
func (h *Ports) setPublic(c *gin.Context) {
	id, port, ok := h.sandboxPort(c)
	if !ok {
		return
	}
	var req portSettings
	if err := bindJSON(c, &req); err != nil {
		_ = c.Error(err)
		return
	}
	if req.Public == nil {
		_ = c.Error(apierror.Invalid("public", "public is required (true or false)"))
		return
	}
	if err := h.ports.SetPublic(c.Request.Context(), auth.From(c).UserID, id, port, *req.Public); err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, portSettings{Port: port, Public: req.Public})
}
