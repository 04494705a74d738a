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

func TestEveryOrWake(t *testing.T) {
	t.Run("runs at once, then on each wake, long before the interval", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		wake := make(chan struct{}, 1)
		calls := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			loop.EveryOrWake(ctx, time.Hour, wake, func(context.Context) { calls <- struct{}{} })
		}()
		for i := range 3 {
			select {
			case <-calls:
			case <-time.After(10 * time.Second):
				t.Fatalf("call %d did not come", i+1)
			}
			wake <- struct{}{}
		}
		cancel()
		select {
		case <-calls: // the last wake's call, if it won the race with cancel
		case <-done:
		}
		<-done
	})
	t.Run("runs again after the interval without a wake", func(t *testing.T) {
		var calls atomic.Int32
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go loop.EveryOrWake(ctx, time.Millisecond, nil, func(context.Context) {
			if calls.Add(1) == 3 {
				cancel()
			}
		})
		<-ctx.Done()
		if got := calls.Load(); got < 3 {
			t.Fatalf("%d calls, want 3", got)
		}
	})
}
