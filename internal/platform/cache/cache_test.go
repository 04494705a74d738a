package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/platform/cache"
	"github.com/insien/orchestrator/internal/testenv"
)

// TestInvalidationWins: a reader that loaded a row before a change cannot put its stale copy
// back after the change invalidated the key.
func TestInvalidationWins(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.OpenRedis(t, testenv.RedisURL(t))
	type row struct{ Status string }

	steps := []struct {
		name string
		do   func() error
		want string // "" = miss
	}{
		{"a fresh copy is cached", func() error { return cache.Set(ctx, rdb, "k", row{"running"}, time.Minute) }, "running"},
		{"a change invalidates it", func() error { return cache.Invalidate(ctx, rdb, "k", 300*time.Millisecond) }, ""},
		{"a stale reader's copy is refused", func() error { return cache.Set(ctx, rdb, "k", row{"running"}, time.Minute) }, ""},
		{"after the window, caching works again", func() error {
			time.Sleep(400 * time.Millisecond)
			return cache.Set(ctx, rdb, "k", row{"stopped"}, time.Minute)
		}, "stopped"},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got, ok := cache.Get[row](ctx, rdb, "k")
		if (step.want == "" && ok) || (step.want != "" && got.Status != step.want) {
			t.Fatalf("%s: got %+v (present %v), want %q", step.name, got, ok, step.want)
		}
	}
}
