package handlers

import (
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/health"
)

// Health serves the liveness and readiness probes.
type Health struct {
	readiness *health.Readiness
	log       *zap.Logger

	mu       sync.Mutex
	lastFail time.Time
}

// NewHealth builds the probe handlers.
func NewHealth(readiness *health.Readiness, log *zap.Logger) *Health {
	return &Health{readiness: readiness, log: log.Named("health")}
}

// Register mounts /health and /livez (liveness) and /ready and /readyz (readiness).
func (h *Health) Register(r gin.IRouter) {
	for _, path := range []string{"/health", "/livez"} {
		r.GET(path, h.live)
	}
	for _, path := range []string{"/ready", "/readyz"} {
		r.GET(path, h.ready)
	}
}

func (h *Health) live(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (h *Health) ready(c *gin.Context) {
	report := h.readiness.Evaluate(c.Request.Context())
	if report.Ready {
		c.JSON(http.StatusOK, gin.H{"status": "ok", "checks": report.Checks})
		return
	}
	h.logFailure(report)
	c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "checks": report.Checks})
}

// logFailure records why readiness failed at most every 10 s: probes run every few seconds.
func (h *Health) logFailure(report health.Report) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.lastFail) < 10*time.Second {
		return
	}
	h.lastFail = time.Now()
	fields := make([]zap.Field, 0, len(report.Errors))
	for name, err := range report.Errors {
		fields = append(fields, zap.NamedError(name, err))
	}
	h.log.Warn("not ready", fields...)
}
