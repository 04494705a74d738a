// Package middleware holds the Gin middleware of the API edge, in the order the engine applies them.
package middleware

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
)

// WriteError writes err in the one error shape and aborts the chain.
func WriteError(c *gin.Context, err *apierror.Error) {
	c.AbortWithStatusJSON(err.Status, apierror.Body{Error: apierror.Detail{
		Code: err.Code, Message: err.Message, Field: err.Field, RequestID: RequestID(c),
	}})
}

// Errors turns the last error a handler attached with c.Error into the one error shape. Unknown
// errors become a 500 that says nothing, and are logged with their cause (and kept on the
// request's span, when it is traced).
func Errors(log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if len(c.Errors) == 0 {
			return
		}
		err := c.Errors.Last().Err
		apiErr := Classify(c.Request.Context(), err)
		if apiErr.Status >= http.StatusInternalServerError {
			log.Error("request failed", append(requestFields(c), zap.String("route", c.FullPath()), zap.Error(err))...)
		} else {
			// A client's mistake, answered: not a failure of ours. The tracing middleware marks
			// a request that still has errors as failed, so none are left for it.
			c.Errors = c.Errors[:0]
		}
		if c.Writer.Written() {
			return // a streaming response already started; the log line is all we can do
		}
		WriteError(c, apiErr)
	}
}

// Classify maps any error to the client-facing error.
func Classify(ctx context.Context, err error) *apierror.Error {
	if apiErr, ok := apierror.As(err); ok {
		return apiErr
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return apierror.New(http.StatusRequestEntityTooLarge, "payload_too_large",
			"request body exceeds %d bytes", tooLarge.Limit)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return apierror.New(http.StatusServiceUnavailable, "request_timeout", "the request took too long")
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return apierror.New(499, "client_closed_request", "the client closed the request")
	}
	return apierror.Internal()
}

// NotFound answers unknown routes in the one error shape. Paths are matched exactly: a trailing
// slash or a doubled one is not redirected (a redirect would turn a POST into a GET in many
// clients, and API clients should use the documented path), so the message points at it.
func NotFound(c *gin.Context) {
	p := c.Request.URL.Path
	hint := ""
	if len(p) > 1 && strings.HasSuffix(p, "/") {
		hint = "; paths take no trailing slash"
	} else if strings.Contains(p, "//") {
		hint = "; paths take no empty segments"
	}
	WriteError(c, apierror.New(http.StatusNotFound, "not_found", "no route for %s %s%s", Method(c), p, hint))
}

// MethodNotAllowed answers a known path with the wrong method in the one error shape. Gin has
// set Allow from the registered routes; every GET route answers HEAD too (HeadAsGet).
func MethodNotAllowed(c *gin.Context) {
	h := c.Writer.Header()
	if allow := strings.Split(h.Get("Allow"), ", "); slices.Contains(allow, http.MethodGet) && !slices.Contains(allow, http.MethodHead) {
		h.Set("Allow", strings.Join(append(allow, http.MethodHead), ", "))
	}
	WriteError(c, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed", "method %s is not allowed on %s", Method(c), c.Request.URL.Path))
}
