package handlers

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/identity/auth"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/middleware"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/internal/sandbox/templates"
)

// logPoll is how often a followed build log is read again.
const logPoll = 300 * time.Millisecond

// TemplateBodyLimit lets a template's build context through: templates.max_context_bytes, in
// base64 within JSON at most.
func TemplateBodyLimit(cfg config.Templates) middleware.RouteLimit {
	return middleware.RouteLimit{Method: http.MethodPost, Path: "/api/templates", Limit: int64(cfg.MaxContextBytes)*4/3 + 64<<10}
}

// Templates serves users' templates and sandbox snapshots (the sandboxes scopes cover them).
type Templates struct {
	auth      *auth.Authenticator
	templates *templates.Service
}

// NewTemplates builds the template endpoints.
func NewTemplates(a *auth.Authenticator, t *templates.Service) *Templates {
	return &Templates{auth: a, templates: t}
}

// Register mounts /api/templates and the snapshot of a sandbox.
func (h *Templates) Register(r gin.IRouter) {
	g, read, write := sandboxGroup(r, h.auth, "/api/templates")
	g.POST("", write, h.create)
	g.GET("", read, h.list)
	g.GET("/:id", read, h.get)
	g.GET("/:id/logs", read, h.logs)
	g.DELETE("/:id", write, h.delete)
	sb, _, write := sandboxGroup(r, h.auth, "/api/sandboxes")
	sb.POST("/:id/snapshot", write, h.snapshot)
}

// templateResponse is a template as users see it; public ones are the operator's images.
type templateResponse struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Public     bool       `json:"public"`
	Source     string     `json:"source"` // dockerfile | snapshot | image
	Status     string     `json:"status"`
	Error      *string    `json:"error,omitempty"`
	FailedStep *string    `json:"failed_step,omitempty"`
	SizeBytes  int64      `json:"size_bytes"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

func toTemplateResponse(t *model.Template) templateResponse {
	return templateResponse{ID: t.ID.String(), Name: t.Name, Source: t.Source, Status: t.Status, Error: t.Error,
		FailedStep: t.FailedStep, SizeBytes: t.SizeBytes, CreatedAt: &t.CreatedAt, FinishedAt: t.FinishedAt}
}

// create takes a JSON body (the Dockerfile and base64 files), or a tar stream (gzip-compressed
// or not, Content-Type application/x-tar or application/gzip) with the name in ?name=.
func (h *Templates) create(c *gin.Context) {
	var t *model.Template
	var err error
	switch c.ContentType() {
	case "application/x-tar", "application/gzip", "application/x-gzip":
		t, err = h.templates.CreateFromTar(c.Request.Context(), auth.From(c).UserID, c.Query("name"), c.Request.Body)
	default:
		var in templates.CreateInput
		if err := bindJSON(c, &in); err != nil {
			_ = c.Error(err)
			return
		}
		t, err = h.templates.Create(c.Request.Context(), auth.From(c).UserID, in)
	}
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusAccepted, toTemplateResponse(t))
}

func (h *Templates) list(c *gin.Context) {
	own, err := h.templates.List(c.Request.Context(), auth.From(c).UserID)
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]templateResponse, 0, len(own)+len(h.templates.Public()))
	for _, image := range h.templates.Public() {
		out = append(out, templateResponse{ID: image, Name: image, Public: true, Source: "image", Status: model.TemplateReady})
	}
	for i := range own {
		out = append(out, toTemplateResponse(&own[i]))
	}
	c.JSON(http.StatusOK, gin.H{"templates": out})
}

func (h *Templates) get(c *gin.Context) {
	t, err := h.templates.Get(c.Request.Context(), auth.From(c).UserID, c.Param("id"))
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, toTemplateResponse(t))
}

// logs returns the build log as text, or with follow=true streams it as server-sent events
// ("log" events carrying {"data": ...}, then one "end" event with the template) until the build
// is over.
func (h *Templates) logs(c *gin.Context) {
	ctx, user, id := c.Request.Context(), auth.From(c).UserID, c.Param("id")
	follow, _ := strconv.ParseBool(c.Query("follow"))
	text, over, err := h.templates.Log(ctx, user, id, 0)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if !follow {
		c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(text))
		return
	}
	stream := startEventStream(c)
	defer stream.stop()
	sent := 0
	for {
		if text != "" {
			if stream.send("log", gin.H{"data": text}) != nil {
				return
			}
			sent += len(text)
		}
		if over {
			t, err := h.templates.Get(ctx, user, id)
			if err == nil {
				_ = stream.send("end", toTemplateResponse(t))
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(logPoll):
		}
		if text, over, err = h.templates.Log(ctx, user, id, sent); err != nil {
			stream.fail(c, ctx, err)
			return
		}
	}
}

func (h *Templates) delete(c *gin.Context) {
	if err := h.templates.Delete(c.Request.Context(), auth.From(c).UserID, c.Param("id")); err != nil {
		_ = c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
}

// snapshot makes a template of a running sandbox's filesystem.
func (h *Templates) snapshot(c *gin.Context) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		_ = c.Error(apierror.NotFound("sandbox"))
		return
	}
	var req struct {
		Name string `json:"name"`
	}
	if err := bindJSON(c, &req); err != nil {
		_ = c.Error(err)
		return
	}
	t, err := h.templates.Snapshot(c.Request.Context(), auth.From(c).UserID, id, req.Name)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusCreated, toTemplateResponse(t))
}
