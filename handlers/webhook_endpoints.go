package handlers

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/events/webhooks"
	"github.com/insien/orchestrator/internal/identity/auth"
	"github.com/insien/orchestrator/repositories"
)

// WebhookEndpoints serves users' outbound webhooks: the endpoints their events are sent to and
// the deliveries made (the sandboxes scopes cover them). Not to be confused with Webhooks, which
// receives Clerk's inbound deliveries at POST /api/webhooks/clerk: Gin matches that static path
// before the :id routes here, and "clerk" is no endpoint's id (ids are UUIDs).
type WebhookEndpoints struct {
	auth     *auth.Authenticator
	webhooks *webhooks.Service
}

// NewWebhookEndpoints builds the outbound webhook endpoints.
func NewWebhookEndpoints(a *auth.Authenticator, w *webhooks.Service) *WebhookEndpoints {
	return &WebhookEndpoints{auth: a, webhooks: w}
}

// Register mounts /api/webhooks (beside POST /api/webhooks/clerk).
func (h *WebhookEndpoints) Register(r gin.IRouter) {
	g, read, write := sandboxGroup(r, h.auth, "/api/webhooks")
	g.POST("", write, h.create)
	g.GET("", read, h.list)
	g.GET("/:id", read, h.get)
	g.PATCH("/:id", write, h.update)
	g.DELETE("/:id", write, h.delete)
	g.POST("/:id/test", write, h.test)
	g.GET("/:id/deliveries", read, h.deliveries)
	g.POST("/:id/deliveries/:delivery_id/retry", write, h.retry)
}

// webhookResponse is an endpoint; its secret is shown once, in the create's answer.
type webhookResponse struct {
	ID             uuid.UUID  `json:"id"`
	URL            string     `json:"url"`
	Events         []string   `json:"events"`
	Description    string     `json:"description"`
	Enabled        bool       `json:"enabled"`
	DisabledAt     *time.Time `json:"disabled_at"`
	DisabledReason *string    `json:"disabled_reason"`
	FailingSince   *time.Time `json:"failing_since"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	Secret         string     `json:"secret,omitempty"`
}

func toWebhookResponse(e *repositories.WebhookEndpoint) webhookResponse {
	return webhookResponse{ID: e.ID, URL: e.URL, Events: e.Events, Description: e.Description, Enabled: e.DisabledAt == nil,
		DisabledAt: e.DisabledAt, DisabledReason: e.DisabledReason, FailingSince: e.FailingSince, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

// attemptResponse is one try at a delivery.
type attemptResponse struct {
	AttemptedAt time.Time `json:"attempted_at"`
	StatusCode  *int      `json:"status_code"`
	LatencyMS   int       `json:"latency_ms"`
	Error       *string   `json:"error"`
}

// deliveryResponse is one event on its way to one endpoint, and every attempt at it.
type deliveryResponse struct {
	ID             uuid.UUID         `json:"id"`
	WebhookID      uuid.UUID         `json:"webhook_id"`
	EventID        uuid.UUID         `json:"event_id"`
	EventType      string            `json:"event_type"`
	Payload        json.RawMessage   `json:"payload"`
	Status         string            `json:"status"`
	AttemptCount   int               `json:"attempt_count"`
	NextAttemptAt  *time.Time        `json:"next_attempt_at"`
	LastStatusCode *int              `json:"last_status_code"`
	LastError      *string           `json:"last_error"`
	LastLatencyMS  *int              `json:"last_latency_ms"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	Attempts       []attemptResponse `json:"attempts"`
}

func toDeliveryResponse(d *webhooks.Delivery) deliveryResponse {
	r := deliveryResponse{ID: d.ID, WebhookID: d.EndpointID, EventID: d.EventID, EventType: d.EventType, Payload: d.Payload,
		Status: d.Status, AttemptCount: d.WebhookDelivery.Attempts, LastStatusCode: d.LastStatusCode, LastError: d.LastError,
		LastLatencyMS: d.LastLatencyMS, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, Attempts: []attemptResponse{}}
	if d.Status == repositories.DeliveryPending {
		r.NextAttemptAt = &d.NextAttemptAt
	}
	for _, a := range d.History {
		r.Attempts = append(r.Attempts, attemptResponse{AttemptedAt: a.AttemptedAt, StatusCode: a.StatusCode, LatencyMS: a.LatencyMS, Error: a.Error})
	}
	return r
}

func (h *WebhookEndpoints) create(c *gin.Context) {
	var req struct {
		URL         string   `json:"url"`
		Events      []string `json:"events"`
		Description string   `json:"description"`
	}
	if err := bindJSON(c, &req); err != nil {
		_ = c.Error(err)
		return
	}
	e, secret, err := h.webhooks.Create(c.Request.Context(), auth.From(c).UserID, webhooks.CreateInput{URL: req.URL, Events: req.Events, Description: req.Description})
	if err != nil {
		_ = c.Error(err)
		return
	}
	resp := toWebhookResponse(e)
	resp.Secret = secret
	c.JSON(http.StatusCreated, resp)
}

func (h *WebhookEndpoints) list(c *gin.Context) {
	rows, err := h.webhooks.List(c.Request.Context(), auth.From(c).UserID)
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]webhookResponse, len(rows))
	for i := range rows {
		out[i] = toWebhookResponse(&rows[i])
	}
	c.JSON(http.StatusOK, gin.H{"webhooks": out})
}

func (h *WebhookEndpoints) get(c *gin.Context) {
	e, err := h.webhooks.Get(c.Request.Context(), auth.From(c).UserID, c.Param("id"))
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, toWebhookResponse(e))
}

func (h *WebhookEndpoints) update(c *gin.Context) {
	var req struct {
		URL         *string   `json:"url"`
		Events      *[]string `json:"events"`
		Description *string   `json:"description"`
		Enabled     *bool     `json:"enabled"`
	}
	if err := bindJSON(c, &req); err != nil {
		_ = c.Error(err)
		return
	}
	in := webhooks.UpdateInput{URL: req.URL, Description: req.Description, Enabled: req.Enabled}
	if req.Events != nil {
		in.Events = append([]string{}, *req.Events...)
	}
	e, err := h.webhooks.Update(c.Request.Context(), auth.From(c).UserID, c.Param("id"), in)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, toWebhookResponse(e))
}

func (h *WebhookEndpoints) delete(c *gin.Context) {
	if err := h.webhooks.Delete(c.Request.Context(), auth.From(c).UserID, c.Param("id")); err != nil {
		_ = c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
}

// test enqueues a webhook.test delivery: 202, sent by the worker like any other.
func (h *WebhookEndpoints) test(c *gin.Context) {
	d, err := h.webhooks.Test(c.Request.Context(), auth.From(c).UserID, c.Param("id"))
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusAccepted, toDeliveryResponse(d))
}

func (h *WebhookEndpoints) deliveries(c *gin.Context) {
	limit, ok := pageLimit(c)
	if !ok {
		return
	}
	rows, next, err := h.webhooks.Deliveries(c.Request.Context(), auth.From(c).UserID, c.Param("id"),
		webhooks.DeliveriesInput{Status: c.Query("status"), Limit: limit, Cursor: c.Query("cursor")})
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]deliveryResponse, len(rows))
	for i := range rows {
		out[i] = toDeliveryResponse(&rows[i])
	}
	c.JSON(http.StatusOK, gin.H{"deliveries": out, "next_cursor": nextCursor(next)})
}

// retry makes a delivery due now with a fresh attempt window: 202, sent by the worker.
func (h *WebhookEndpoints) retry(c *gin.Context) {
	d, err := h.webhooks.Retry(c.Request.Context(), auth.From(c).UserID, c.Param("id"), c.Param("delivery_id"))
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusAccepted, toDeliveryResponse(d))
}
