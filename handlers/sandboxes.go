package handlers

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/identity/auth"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/sandbox/lifecycle"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/internal/sandbox/volumes"
)

// Sandboxes serves the sandbox lifecycle to API keys and Clerk sessions.
type Sandboxes struct {
	auth      *auth.Authenticator
	sandboxes *lifecycle.Service
}

// NewSandboxes builds the sandbox endpoints.
func NewSandboxes(a *auth.Authenticator, s *lifecycle.Service) *Sandboxes {
	return &Sandboxes{auth: a, sandboxes: s}
}

// sandboxGroup is where every sandbox route lives: a Clerk session or an API key, with the read
// or write scope per route.
func sandboxGroup(r gin.IRouter, a *auth.Authenticator, path string) (g *gin.RouterGroup, read, write gin.HandlerFunc) {
	return r.Group(path, a.Require(auth.KindSession, auth.KindAPIKey)),
		auth.RequireScope(apikeys.ScopeSandboxesRead), auth.RequireScope(apikeys.ScopeSandboxesWrite)
}

// Register mounts /api/sandboxes.
func (h *Sandboxes) Register(r gin.IRouter) {
	g, read, write := sandboxGroup(r, h.auth, "/api/sandboxes")
	g.POST("", write, h.create)
	g.GET("", read, h.list)
	g.GET("/:id", read, h.get)
	g.DELETE("/:id", write, h.delete)
	g.POST("/:id/timeout", write, h.setTimeout)
	g.POST("/:id/keepalive", write, h.keepAlive)
	g.POST("/:id/pause", write, h.pause)
	g.POST("/:id/resume", write, h.resume)
	g.PUT("/:id/network", write, h.setNetwork)
	g.GET("/:id/network/blocked", read, h.blockedEgress)
	rt, read, _ := sandboxGroup(r, h.auth, "/api/runtime")
	rt.GET("", read, h.runtime)
}

// runtime answers which driver runs sandboxes and what it can do.
func (h *Sandboxes) runtime(c *gin.Context) { c.JSON(http.StatusOK, h.sandboxes.Runtime()) }

type createSandboxRequest struct {
	Image          string            `json:"image"`
	Command        []string          `json:"command"`
	Env            map[string]string `json:"env"`
	Metadata       map[string]string `json:"metadata"`
	TimeoutSeconds *int              `json:"timeout_seconds"`
	CPU            *float64          `json:"cpu"`
	MemoryMB       *int64            `json:"memory_mb"`
	DiskMB         *int64            `json:"disk_mb"`
	AutoExtend     *bool             `json:"auto_extend"`
	Network        *model.Network    `json:"network"`
	Volumes        []volumes.Request `json:"volumes"`
	Template       string            `json:"template"`
}

// sandboxResponse is a sandbox as clients see it: env names, never values.
type sandboxResponse struct {
	ID        uuid.UUID `json:"id"`
	Status    string    `json:"status"`
	EndReason *string   `json:"end_reason"`
	// ExitCode is the main process's exit status when it ended by itself (end_reason
	// process_exited or oom_killed): 128+signal when a signal killed it, 137 for an OOM kill.
	ExitCode *int              `json:"exit_code"`
	Image    string            `json:"image"`
	Command  []string          `json:"command"`
	Metadata map[string]string `json:"metadata"`
	EnvNames []string          `json:"env_names"`
	CPU      float64           `json:"cpu"`
	MemoryMB int64             `json:"memory_mb"`
	// DiskMB bounds what it writes to its own filesystem; null: no limit (the runtime cannot).
	DiskMB         *int64     `json:"disk_mb"`
	TimeoutSeconds int        `json:"timeout_seconds"`
	CreatedAt      time.Time  `json:"created_at"`
	StartedAt      *time.Time `json:"started_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
	EndedAt        *time.Time `json:"ended_at"`
	PausedAt       *time.Time `json:"paused_at"`
	AutoExtend     bool       `json:"auto_extend"`
	// Start says how it started: "warm" (it claimed a running warm pool member) or "cold".
	Start string `json:"start"`
	// PublicPorts open their preview host without a token.
	PublicPorts []int `json:"public_ports"`
	// Network is the egress policy in force.
	Network model.Network `json:"network"`
	// Volumes are the volumes it mounts.
	Volumes []model.VolumeMount `json:"volumes"`
	// ActiveConnections is reported by GET /api/sandboxes/{id} only: counting costs a Redis call.
	ActiveConnections *int `json:"active_connections,omitempty"`
	// Ports is reported by GET /api/sandboxes/{id} only: reading them costs a runtime call.
	Ports *[]listeningPort `json:"ports,omitempty"`
}

func toSandboxResponse(s *model.Sandbox) sandboxResponse {
	return sandboxResponse{ID: s.ID, Status: string(s.Status), EndReason: s.EndReason, ExitCode: s.ExitCode, Image: s.Image, Command: s.Command,
		Metadata: s.Metadata, EnvNames: s.EnvNames, CPU: s.CPU, MemoryMB: s.MemoryMB, DiskMB: s.DiskMB, TimeoutSeconds: s.TimeoutSeconds,
		CreatedAt: s.CreatedAt, StartedAt: s.StartedAt, ExpiresAt: s.ExpiresAt, EndedAt: s.EndedAt,
		PausedAt: s.PausedAt, AutoExtend: s.AutoExtend, Start: s.Start, PublicPorts: s.PublicPorts, Network: s.Network, Volumes: s.Volumes}
}

// listeningPort is a port something listens on inside a sandbox.
type listeningPort struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

func caller(c *gin.Context) lifecycle.Caller {
	p := auth.From(c)
	out := lifecycle.Caller{UserID: p.UserID}
	if p.Kind == auth.KindAPIKey {
		out.APIKeyID = &p.KeyID
	}
	return out
}

func (h *Sandboxes) create(c *gin.Context) {
	// The container starts even if this takes longer than the server's write timeout (a slow
	// engine, an image pull): keep the connection able to carry the 201.
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(lifecycle.RuntimeBudget + 30*time.Second))
	in, err := createInput(c)
	if err != nil {
		_ = c.Error(err)
		return
	}
	sb, replayed, err := h.sandboxes.Create(c.Request.Context(), caller(c), in)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	c.JSON(http.StatusCreated, toSandboxResponse(sb))
}

// createInput decodes a create request: the JSON body (which may be left out) and the
// Idempotency-Key header.
func createInput(c *gin.Context) (lifecycle.CreateInput, error) {
	var req createSandboxRequest
	if err := bindOptionalJSON(c, &req); err != nil {
		return lifecycle.CreateInput{}, err
	}
	return lifecycle.CreateInput{
		Image: req.Image, Command: req.Command, Env: req.Env, Metadata: req.Metadata,
		TimeoutSeconds: req.TimeoutSeconds, CPU: req.CPU, MemoryMB: req.MemoryMB, DiskMB: req.DiskMB, AutoExtend: req.AutoExtend,
		Network: req.Network, Volumes: req.Volumes, Template: req.Template, IdempotencyKey: c.GetHeader("Idempotency-Key"),
	}, nil
}

func (h *Sandboxes) list(c *gin.Context) {
	limit, ok := pageLimit(c)
	if !ok {
		return
	}
	rows, next, err := h.sandboxes.List(c.Request.Context(), auth.From(c).UserID, lifecycle.ListInput{
		Status: c.Query("status"), Metadata: c.QueryMap("metadata"), Limit: limit, Cursor: c.Query("cursor"),
	})
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]sandboxResponse, 0, len(rows))
	for i := range rows {
		out = append(out, toSandboxResponse(&rows[i]))
	}
	c.JSON(http.StatusOK, gin.H{"sandboxes": out, "next_cursor": nextCursor(next)})
}

// pageLimit reads ?limit= of a list (DefaultListLimit when absent); a value that is not a number
// is answered 400 here (false), and the service checks the range.
func pageLimit(c *gin.Context) (int, bool) {
	raw := c.Query("limit")
	if raw == "" {
		return lifecycle.DefaultListLimit, true
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		_ = c.Error(apierror.Invalid("limit", "limit must be a number between 1 and 100"))
		return 0, false
	}
	return n, true
}

// nextCursor is a list's next_cursor: null on the last page.
func nextCursor(next string) *string {
	if next == "" {
		return nil
	}
	return &next
}

// sandboxID parses the path id; a malformed id is simply not found.
func sandboxID(c *gin.Context) (uuid.UUID, bool) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		_ = c.Error(apierror.NotFound("sandbox"))
		return uuid.Nil, false
	}
	return id, true
}

func (h *Sandboxes) get(c *gin.Context) {
	id, ok := sandboxID(c)
	if !ok {
		return
	}
	sb, live, err := h.sandboxes.View(c.Request.Context(), auth.From(c).UserID, id)
	if err != nil {
		_ = c.Error(err)
		return
	}
	resp := toSandboxResponse(sb)
	resp.ActiveConnections = &live.Connections
	ports := make([]listeningPort, len(live.Ports))
	for i, p := range live.Ports {
		ports[i] = listeningPort{Port: p, Protocol: "tcp"}
	}
	resp.Ports = &ports
	c.JSON(http.StatusOK, resp)
}

func (h *Sandboxes) delete(c *gin.Context) {
	id, ok := sandboxID(c)
	if !ok {
		return
	}
	if err := h.sandboxes.Delete(c.Request.Context(), auth.From(c).UserID, id); err != nil {
		_ = c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *Sandboxes) setTimeout(c *gin.Context) {
	id, ok := sandboxID(c)
	if !ok {
		return
	}
	var req struct {
		TimeoutSeconds *int `json:"timeout_seconds"`
	}
	if err := bindJSON(c, &req); err != nil {
		_ = c.Error(err)
		return
	}
	if req.TimeoutSeconds == nil {
		_ = c.Error(apierror.Invalid("timeout_seconds", "timeout_seconds is required"))
		return
	}
	sb, err := h.sandboxes.SetTimeout(c.Request.Context(), auth.From(c).UserID, id, *req.TimeoutSeconds)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, toSandboxResponse(sb))
}

// setNetwork replaces a running sandbox's egress policy.
func (h *Sandboxes) setNetwork(c *gin.Context) {
	id, ok := sandboxID(c)
	if !ok {
		return
	}
	var req model.Network
	if err := bindJSON(c, &req); err != nil {
		_ = c.Error(err)
		return
	}
	if req.Egress == "" {
		_ = c.Error(apierror.Invalid("egress", "egress is required: none, allow or all"))
		return
	}
	sb, err := h.sandboxes.SetNetwork(c.Request.Context(), auth.From(c).UserID, id, req)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, toSandboxResponse(sb))
}

// blockedEgress lists what a sandbox tried to reach and was refused.
func (h *Sandboxes) blockedEgress(c *gin.Context) {
	id, ok := sandboxID(c)
	if !ok {
		return
	}
	blocked, err := h.sandboxes.BlockedEgress(c.Request.Context(), auth.From(c).UserID, id)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, blocked)
}

func (h *Sandboxes) keepAlive(c *gin.Context) { h.change(c, h.sandboxes.KeepAlive) }
func (h *Sandboxes) pause(c *gin.Context)     { h.change(c, h.sandboxes.Pause) }
func (h *Sandboxes) resume(c *gin.Context)    { h.change(c, h.sandboxes.Resume) }

// change runs a body-less state change on the path's sandbox and answers with the sandbox.
func (h *Sandboxes) change(c *gin.Context, apply func(context.Context, uuid.UUID, uuid.UUID) (*model.Sandbox, error)) {
	id, ok := sandboxID(c)
	if !ok {
		return
	}
	sb, err := apply(c.Request.Context(), auth.From(c).UserID, id)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, toSandboxResponse(sb))
}
