package handlers

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/events"
	"github.com/insien/orchestrator/internal/identity/auth"
)

// Events serves a user's event log (the sandboxes read scope covers it).
type Events struct {
	auth   *auth.Authenticator
	events *events.Service
}

// NewEvents builds the event log endpoint.
func NewEvents(a *auth.Authenticator, e *events.Service) *Events {
	return &Events{auth: a, events: e}
}

// Register mounts /api/events.
func (h *Events) Register(r gin.IRouter) {
	g, read, _ := sandboxGroup(r, h.auth, "/api/events")
	g.GET("", read, h.list)
}

// eventResponse is one event: what happened (type, data), to what (sandbox_id or api_key_id), who
// made it happen (actor: "key:<id>", "user:<id>" or "system") in which request, and when.
type eventResponse struct {
	ID        uuid.UUID       `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	Actor     string          `json:"actor"`
	RequestID *string         `json:"request_id"`
	SandboxID *uuid.UUID      `json:"sandbox_id"`
	APIKeyID  *uuid.UUID      `json:"api_key_id"`
	Data      json.RawMessage `json:"data"`
}

func (h *Events) list(c *gin.Context) {
	limit, ok := pageLimit(c)
	if !ok {
		return
	}
	rows, next, err := h.events.List(c.Request.Context(), auth.From(c).UserID, events.ListInput{
		Type: c.Query("type"), SandboxID: c.Query("sandbox_id"), Limit: limit, Cursor: c.Query("cursor"),
	})
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]eventResponse, 0, len(rows))
	for _, e := range rows {
		r := eventResponse{ID: e.ID, Type: e.Type, CreatedAt: e.CreatedAt, Actor: e.Actor, SandboxID: e.SandboxID, APIKeyID: e.APIKeyID, Data: e.Data}
		if e.RequestID != "" {
			r.RequestID = &e.RequestID
		}
		out = append(out, r)
	}
	c.JSON(http.StatusOK, gin.H{"events": out, "next_cursor": nextCursor(next)})
}
