package middleware

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
)

type headKey struct{}

// HeadAsGet answers HEAD on every GET route as GET would, without a body (RFC 9110 §9.3.2).
// Gin routes HEAD only to routes registered for HEAD, and endpoint families register routes on
// groups the route mount cannot intercept, so this wraps the engine instead: a HEAD request is
// routed as GET and marked, so logs and errors still name HEAD.
//
// net/http already discards the body of a response to HEAD (and still computes its
// Content-Length when the handler writes it at once). What it cannot do is stop a handler that
// streams: followed logs, server-sent events and downloads would run for nothing until they
// ended. So once the status line is committed, the request's context is cancelled: every
// streaming handler stops as it does when a client leaves. A HEAD cannot open a WebSocket
// either: its Upgrade header is dropped, so the terminal answers as to any plain request.
func HeadAsGet(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(context.WithValue(r.Context(), headKey{}, true))
		defer cancel()
		get := r.Clone(ctx)
		get.Method = http.MethodGet
		get.Header.Del("Upgrade")
		next.ServeHTTP(&headWriter{ResponseWriter: w, committed: cancel}, get)
	})
}

// Method is the request's method as the client sent it: HEAD for a HEAD routed as GET.
func Method(c *gin.Context) string {
	if head, _ := c.Request.Context().Value(headKey{}).(bool); head {
		return http.MethodHead
	}
	return c.Request.Method
}

// headWriter cancels the request once the response's status is sent: for HEAD, nothing after it
// reaches the client.
type headWriter struct {
	http.ResponseWriter
	committed context.CancelFunc
}

var errHeadUpgrade = errors.New("a HEAD request cannot switch protocols")

func (w *headWriter) WriteHeader(code int) {
	w.ResponseWriter.WriteHeader(code)
	if code >= http.StatusOK {
		w.committed()
	}
}

func (w *headWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p) // discarded by net/http, counted for Content-Length
	w.committed()
	return n, err
}

// Flush commits the headers: a streaming handler flushes them before its first event.
func (w *headWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	w.committed()
}

// Hijack refuses: gin's writer asserts the interface, and a HEAD never becomes a WebSocket.
func (w *headWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errHeadUpgrade
}

// CloseNotify is part of gin's writer interface, which asserts it on the wrapped writer.
func (w *headWriter) CloseNotify() <-chan bool {
	return w.ResponseWriter.(http.CloseNotifier).CloseNotify()
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *headWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
