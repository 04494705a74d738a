package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// HTTP counts and times the API's requests by route template, method and status class: labels
// with a bounded set of values whatever clients send.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHTTP registers the request metrics on reg.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	labels := []string{"route", "method", "status"}
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "http",
			Name: "requests_total", Help: "HTTP requests answered, by route template, method and status class (2xx, 4xx, ...)."}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: "http",
			Name: "request_duration_seconds", Help: "Time from a request's arrival to the end of its answer (a stream's whole life), by route template, method and status class.",
			Buckets: LatencyBuckets}, labels),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// Middleware records each request once it has been answered. It must come first in the chain, so
// that it sees the status that recovery wrote for a panic.
func (m *HTTP) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched" // a 404, or a host the API does not serve: the path is the client's
		}
		labels := prometheus.Labels{"route": route, "method": method(c.Request.Method), "status": statusClass(c.Writer.Status())}
		m.requests.With(labels).Inc()
		m.duration.With(labels).Observe(time.Since(start).Seconds())
	}
}

// method is one of the methods the API serves, or "other": a client can send any token there.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}
