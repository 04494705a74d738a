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

// streamEndGrace is what is left of that bound once shutdown has asked the streams to end: long
// enough for a reading client to get the stream's last event, short enough that a stalled one
// does not hold the shutdown until streamWriteIdle.
const streamEndGrace = time.Second

const (
	streamsKey   = "streams"
	streamCtxKey = "stream_context"
	streamEndKey = "stream_end"
)

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

// Middleware makes the tracker reachable from Untimed. A stream counts until its handler has
// returned, not merely until its context ended: a handler still killing what it started (a
// terminal's command, a streamed exec) is waited for by End.
func (s *Streams) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(streamsKey, s)
		c.Next()
		if end, ok := c.Get(streamEndKey); ok {
			end.(func())()
		}
	}
}

// track counts a request as a stream until its handler returns and gives it a context that ends
// when the client leaves or when End is called; from End on, its writes get streamEndGrace.
func (s *Streams) track(c *gin.Context, ctx context.Context, rc *http.ResponseController) context.Context {
	if tracked, ok := c.Get(streamCtxKey); ok {
		return tracked.(context.Context)
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, func() {
		_ = rc.SetWriteDeadline(time.Now().Add(streamEndGrace))
		cancel()
	})
	s.active.Add(1)
	c.Set(streamCtxKey, ctx)
	c.Set(streamEndKey, func() {
		stop()
		cancel()
		s.active.Done()
	})
	return ctx
}

// writeIdle is how long the next write to a stream may block.
func (s *Streams) writeIdle() time.Duration {
	if s != nil && s.ctx.Err() != nil {
		return streamEndGrace
	}
	return streamWriteIdle
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
	rc      *http.ResponseController
	streams *Streams // nil when the engine has no tracker
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.streams.writeIdle()))
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) WriteString(s string) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.streams.writeIdle()))
	return w.ResponseWriter.WriteString(s)
}

// Unwrap lets http.ResponseController reach the connection (flush, hijack, deadlines).
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
