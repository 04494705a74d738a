package handlers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/identity/auth"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/sandbox/volumes"
)

// Volumes serves users' persistent volumes (the sandboxes scopes cover them).
type Volumes struct {
	auth    *auth.Authenticator
	volumes *volumes.Service
}

// NewVolumes builds the volume endpoints.
func NewVolumes(a *auth.Authenticator, v *volumes.Service) *Volumes {
	return &Volumes{auth: a, volumes: v}
}

// Register mounts /api/volumes.
func (h *Volumes) Register(r gin.IRouter) {
	g, read, write := sandboxGroup(r, h.auth, "/api/volumes")
	g.POST("", write, h.create)
	g.GET("", read, h.list)
	g.GET("/:id", read, h.get)
	g.DELETE("/:id", write, h.delete)
}

// volumeResponse is a volume and the live sandbox mounting it (null when none does).
type volumeResponse struct {
	ID        uuid.UUID  `json:"id"`
	Name      string     `json:"name"`
	SizeMB    int        `json:"size_mb"`
	CreatedAt time.Time  `json:"created_at"`
	UsedBy    *uuid.UUID `json:"used_by"`
}

func toVolumeResponse(v volumes.Volume) volumeResponse {
	return volumeResponse{ID: v.ID, Name: v.Name, SizeMB: v.SizeMB, CreatedAt: v.CreatedAt, UsedBy: v.UsedBy}
}

func (h *Volumes) create(c *gin.Context) {
	var req struct {
		Name   string `json:"name"`
		SizeMB *int   `json:"size_mb"`
	}
	if err := bindJSON(c, &req); err != nil {
		_ = c.Error(err)
		return
	}
	if req.SizeMB == nil {
		_ = c.Error(apierror.Invalid("size_mb", "size_mb is required"))
		return
	}
	v, err := h.volumes.Create(c.Request.Context(), auth.From(c).UserID, req.Name, *req.SizeMB)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusCreated, toVolumeResponse(volumes.Volume{Volume: *v}))
}

func (h *Volumes) list(c *gin.Context) {
	vols, err := h.volumes.List(c.Request.Context(), auth.From(c).UserID)
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]volumeResponse, len(vols))
	for i, v := range vols {
		out[i] = toVolumeResponse(v)
	}
	c.JSON(http.StatusOK, gin.H{"volumes": out})
}

func (h *Volumes) get(c *gin.Context) {
	v, err := h.volumes.Get(c.Request.Context(), auth.From(c).UserID, c.Param("id"))
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, toVolumeResponse(v))
}

func (h *Volumes) delete(c *gin.Context) {
	if err := h.volumes.Delete(c.Request.Context(), auth.From(c).UserID, c.Param("id")); err != nil {
		_ = c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
}
