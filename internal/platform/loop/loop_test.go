package loop_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/platform/loop"
)

func TestEvery(t *testing.T) {
	t.Run("stops when fn is done", func(t *testing.T) {
		var calls atomic.Int32
		loop.Every(t.Context(), time.Millisecond, func(context.Context) bool { return calls.Add(1) == 3 })
		if got := calls.Load(); got != 3 {
			t.Fatalf("fn ran %d times, want 3", got)
		}
	})
	t.Run("stops when ctx ends, without a call first", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		called := false
		loop.Every(ctx, time.Millisecond, func(context.Context) bool { called = true; return false })
		if called {
			t.Fatal("fn ran after ctx ended")
		}
	})
	t.Run("waits one interval before the first call", func(t *testing.T) {
		start := time.Now()
		var first time.Duration
		loop.Every(t.Context(), 50*time.Millisecond, func(context.Context) bool { first = time.Since(start); return true })
		if first < 50*time.Millisecond {
			t.Fatalf("first call after %s, want at least one interval", first)
		}
	})
}
