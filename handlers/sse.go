package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/loop"
	"github.com/insien/orchestrator/internal/platform/middleware"
)

// Server-sent events (text/event-stream), for the endpoints that stream: exec and followed logs.

// sseKeepalive is how often an idle event stream gets a comment line, so proxies keep it open.
const sseKeepalive = 15 * time.Second

// wantsEventStream reports whether the client asked for server-sent events.
func wantsEventStream(c *gin.Context) bool {
	return strings.Contains(c.GetHeader("Accept"), "text/event-stream")
}

// eventStream writes server-sent events, flushing each; sends may come from several goroutines.
type eventStream struct {
	c       *gin.Context
	mu      sync.Mutex
	started bool
	err     error
	ctx     context.Context // ends at stop: the keepalive's lifetime
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// newEventStream prepares a stream whose headers go out at start.
func newEventStream(c *gin.Context) *eventStream {
	ctx, cancel := context.WithCancel(context.Background())
	return &eventStream{c: c, ctx: ctx, cancel: cancel}
}

// startEventStream starts a stream at once.
func startEventStream(c *gin.Context) *eventStream {
	s := newEventStream(c)
	s.start()
	return s
}

// start sends the headers (so clients know the stream started) and keeps the stream alive with a
// comment line while it is idle. Later calls do nothing.
func (s *eventStream) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	hdr := s.c.Writer.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx: don't buffer
	s.c.Status(http.StatusOK)
	s.c.Writer.WriteHeaderNow()
	s.c.Writer.Flush()
	s.wg.Go(func() {
		loop.Every(s.ctx, sseKeepalive, func(context.Context) bool {
			_ = s.write([]byte(": keepalive\n\n"))
			return false
		})
	})
}

func (s *eventStream) isStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

func (s *eventStream) write(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if _, err := s.c.Writer.Write(b); err != nil {
		s.err = err
		return err
	}
	s.c.Writer.Flush()
	return nil
}

// send writes one event whose data is v as JSON.
func (s *eventStream) send(event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(fmt.Appendf(nil, "event: %s\ndata: %s\n\n", event, data))
}

// fail ends the stream with an error event in the one error shape, unless the client left.
func (s *eventStream) fail(c *gin.Context, ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	_ = c.Error(err) // logged by the error middleware when it is a 500
	apiErr := middleware.Classify(ctx, err)
	_ = s.send("error", apierror.Body{Error: apierror.Detail{Code: apiErr.Code, Message: apiErr.Message,
		Field: apiErr.Field, RequestID: middleware.RequestID(c)}})
}

// stop ends the keepalive; the handler returns after it.
func (s *eventStream) stop() {
	s.cancel()
	s.wg.Wait()
}

// outputChunk is the data of a stdout or stderr event.
type outputChunk struct {
	Data     string `json:"data"`
	Encoding string `json:"encoding"`
}

// chunkWriter turns one output stream into events. A character split between two writes is held
// back until it is complete, so UTF-8 text is never sent as base64 because of a chunk boundary.
type chunkWriter struct {
	event   string
	stream  *eventStream
	pending []byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	data := append(w.pending, p...)
	cut := completeUTF8(data)
	w.pending = append([]byte(nil), data[cut:]...)
	if cut == 0 {
		return len(p), nil
	}
	text, enc := encode(data[:cut])
	if err := w.stream.send(w.event, outputChunk{Data: text, Encoding: enc}); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *chunkWriter) flush() {
	if len(w.pending) > 0 {
		text, enc := encode(w.pending)
		w.pending = nil
		_ = w.stream.send(w.event, outputChunk{Data: text, Encoding: enc})
	}
}
