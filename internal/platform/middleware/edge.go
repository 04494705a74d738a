package middleware

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
)

// HeaderRequestID carries the request id in and out.
const HeaderRequestID = "X-Request-ID"

const (
	requestIDKey = "request_id"
	principalKey = "log_principal"
)

// Recovery turns a panic into a logged stack and a JSON 500, so no panic reaches a client raw.
func Recovery(log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			recovered := recover()
			if recovered == nil {
				return
			}
			if recovered == http.ErrAbortHandler {
				panic(recovered) // net/http's own signal to drop the connection
			}
			log.Error("panic in handler", append(requestFields(c),
				zap.String("route", c.FullPath()),
				zap.String("panic", fmt.Sprint(recovered)),
				zap.ByteString("stack", debug.Stack()))...)
			if !c.Writer.Written() {
				WriteError(c, apierror.Internal())
			}
			c.Abort()
		}()
		c.Next()
	}
}

// RequestIDs honours a sane incoming X-Request-ID, else generates one, and echoes it.
func RequestIDs() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(HeaderRequestID)
		if !validRequestID(id) {
			id = uuid.NewString()
		}
		c.Set(requestIDKey, id)
		c.Header(HeaderRequestID, id)
		c.Next()
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e { // printable ASCII only: it is echoed and logged
			return false
		}
	}
	return true
}

// RequestID returns the id of the current request.
func RequestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// requestFields name the request in its log lines: its id and, when the request is traced, the
// trace and span ids that find its spans.
func requestFields(c *gin.Context) []zap.Field {
	fields := make([]zap.Field, 1, 9) // room for the request log's own fields
	fields[0] = zap.String("request_id", RequestID(c))
	if sc := trace.SpanContextFromContext(c.Request.Context()); sc.IsValid() {
		fields = append(fields, zap.Stringer("trace_id", sc.TraceID()), zap.Stringer("span_id", sc.SpanID()))
	}
	return fields
}

// SetPrincipal records who made the request, for the request log.
func SetPrincipal(c *gin.Context, principal string) { c.Set(principalKey, principal) }

// RequestLog writes one line per request; probes are logged at debug so they don't drown the rest.
func RequestLog(log *zap.Logger, quietPaths ...string) gin.HandlerFunc {
	quiet := map[string]bool{}
	for _, p := range quietPaths {
		quiet[p] = true
	}
	return func(c *gin.Context) {
		start := time.Now()
		fields := requestFields(c) // before the handlers replace the request's context
		c.Next()
		level := zapcore.InfoLevel
		if quiet[c.Request.URL.Path] {
			level = zapcore.DebugLevel
		}
		if c.Writer.Status() >= http.StatusInternalServerError {
			level = zapcore.WarnLevel
		}
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		fields = append(fields,
			zap.String("method", Method(c)),
			zap.String("route", route),
			zap.Int("status", c.Writer.Status()),
			zap.Duration("latency", time.Since(start)),
			zap.String("client_ip", c.ClientIP()),
		)
		if p := c.GetString(principalKey); p != "" {
			fields = append(fields, zap.String("principal", p))
		}
		log.Log(level, "request", fields...)
	}
}

const untimedKey = "untimed_context"

// Timeout bounds the request context so work stops before the server's WriteTimeout cuts the
// connection (WriteTimeout alone does not cancel anything). Streaming handlers opt out with
// Untimed.
func Timeout(d time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(untimedKey, c.Request.Context())
		ctx, cancel := context.WithTimeout(c.Request.Context(), d)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// Untimed is for streaming responses (SSE, followed logs, transfers, WebSockets) that outlive the
// request timeout. It drops the read deadline and replaces the fixed write deadline with a rolling
// one (each write may block at most streamWriteIdle), and returns the request's context without
// the timeout: cancelled when the client goes away or when shutdown ends the streams.
func Untimed(c *gin.Context) context.Context {
	var s *Streams
	if tracker, ok := c.Get(streamsKey); ok {
		s = tracker.(*Streams)
	}
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(s.writeIdle()))
	if _, wrapped := c.Writer.(*deadlineWriter); !wrapped {
		c.Writer = &deadlineWriter{ResponseWriter: c.Writer, rc: rc, streams: s}
	}
	ctx := c.Request.Context()
	if untimed, ok := c.Get(untimedKey); ok {
		ctx = untimed.(context.Context)
	}
	if s == nil {
		return ctx
	}
	return s.track(c, ctx, rc)
}

// SecurityHeaders sets the Helmet set suited to a JSON API. Written here rather than pulled from
// gin-contrib/secure: six constant headers, and that package's defaults redirect to HTTPS.
func SecurityHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("X-DNS-Prefetch-Control", "off")
		h.Set("X-Permitted-Cross-Domain-Policies", "none")
		c.Next()
	}
}

// CORS allows the configured browser origins; with none configured, no origin is allowed. A
// request from another origin is refused here with 403 origin_not_allowed in the one error shape
// (gin-contrib/cors would answer an empty 403); requests without Origin, or from the API's own
// origin, are not cross-origin and pass.
func CORS(cfg config.CORS) gin.HandlerFunc {
	allowed := map[string]bool{}
	for _, o := range cfg.AllowedOrigins {
		allowed[strings.TrimRight(o, "/")] = true
	}
	allow := func(origin string) bool { return allowed["*"] || allowed[origin] }
	apply := cors.New(cors.Config{
		AllowOriginFunc:  allow,
		AllowMethods:     []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions},
		AllowHeaders:     []string{"Authorization", "Content-Type", "X-API-Key", "X-Request-ID", "Idempotency-Key"},
		ExposeHeaders:    []string{HeaderRequestID, "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"},
		AllowCredentials: cfg.AllowCredentials,
		MaxAge:           cfg.MaxAge,
	})
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin != "" && !sameOrigin(origin, c.Request.Host) && !allow(origin) {
			WriteError(c, apierror.Forbidden("origin_not_allowed",
				"cross-origin requests from this origin are not allowed (http.cors.allowed_origins)"))
			return
		}
		apply(c)
	}
}

// sameOrigin mirrors gin-contrib/cors: a browser sends Origin on same-origin fetches too, and
// those are not cross-origin requests.
func sameOrigin(origin, host string) bool {
	return origin == "http://"+host || origin == "https://"+host
}

// RouteLimit gives one route its own body limit (e.g. file uploads, far above the JSON default).
// Path is the route pattern as registered ("/api/sandboxes/:id/files").
type RouteLimit struct {
	Method string
	Path   string
	Limit  int64
}

// BodyLimit refuses bodies over limit bytes (or the route's own limit): at once when
// Content-Length says so, else when read.
func BodyLimit(defaultLimit int64, routes ...RouteLimit) gin.HandlerFunc {
	perRoute := map[string]int64{}
	for _, r := range routes {
		perRoute[r.Method+" "+r.Path] = r.Limit
	}
	return func(c *gin.Context) {
		limit := defaultLimit
		if l, ok := perRoute[c.Request.Method+" "+c.FullPath()]; ok {
			limit = l
		}
		if c.Request.ContentLength > limit {
			WriteError(c, apierror.New(http.StatusRequestEntityTooLarge, "payload_too_large", "request body exceeds %d bytes", limit))
			return
		}
		if c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		}
		c.Next()
	}
}
