package middleware

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// streamWriteIdle bounds how long one write to a streaming client may block: a client that stops
// reading (but keeps its connection open) is cut off instead of pinning the stream forever.
const streamWriteIdle = 30 * time.Second

const streamsKey = "streams"

// Streams tracks long-lived responses (SSE, followed logs, file transfers, terminals) so shutdown
// can ask them to end and wait for them, WebSockets included, which http.Server.Shutdown ignores.
type Streams struct {
	ctx    context.Context
	cancel context.CancelFunc
	active sync.WaitGroup
}

// NewStreams builds the tracker.
func NewStreams() *Streams {
	ctx, cancel := context.WithCancel(context.Background())
	return &Streams{ctx: ctx, cancel: cancel}
}

// Middleware makes the tracker reachable from Untimed.
func (s *Streams) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(streamsKey, s)
		c.Next()
	}
}

// End asks every stream to finish (their contexts are cancelled) and waits for them until ctx ends.
func (s *Streams) End(ctx context.Context) error {
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.active.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deadlineWriter pushes the connection's write deadline forward before every write.
type deadlineWriter struct {
	gin.ResponseWriter
	rc *http.ResponseController
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(streamWriteIdle))
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) WriteString(s string) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(streamWriteIdle))
	return w.ResponseWriter.WriteString(s)
}

// Unwrap lets http.ResponseController reach the connection (flush, hijack, deadlines).
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
