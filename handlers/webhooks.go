package handlers

import (
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/insien/orchestrator/internal/identity/webhooks"
	"github.com/insien/orchestrator/internal/platform/ratelimit"
)

// Webhooks receives Clerk's webhook deliveries.
type Webhooks struct {
	clerk   *webhooks.Clerk
	limiter *ratelimit.Limiter
}

// NewWebhooks builds the webhook endpoint.
func NewWebhooks(clerk *webhooks.Clerk, limiter *ratelimit.Limiter) *Webhooks {
	return &Webhooks{clerk: clerk, limiter: limiter}
}

// Register mounts POST /api/webhooks/clerk (authenticated by its svix signature).
func (h *Webhooks) Register(r gin.IRouter) {
	r.POST("/api/webhooks/clerk", h.limiter.ByIP(), h.receive)
}

func (h *Webhooks) receive(c *gin.Context) {
	payload, err := io.ReadAll(c.Request.Body)
	if err != nil {
		_ = c.Error(fmt.Errorf("read the webhook body: %w", err))
		return
	}
	outcome, err := h.clerk.Receive(c.Request.Context(), payload, c.Request.Header)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if outcome == webhooks.Duplicate {
		// 2xx so svix stops retrying a delivery whose acknowledgement was lost.
		c.JSON(http.StatusOK, gin.H{"status": "duplicate", "message": "this delivery was already applied; it was not applied again"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}
