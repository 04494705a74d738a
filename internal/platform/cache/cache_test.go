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

// TestFillRefusesReadersOlderThanAChange: a reader's copy is stored only if no invalidation came
// between its read and its fill, and a reader that read after a change caches at once.
func TestFillRefusesReadersOlderThanAChange(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.OpenRedis(t, testenv.RedisURL(t))
	type row struct{ Status string }
	read := func() *cache.Entry[row] { return cache.Read[row](ctx, rdb, "k") }
	invalidate := func() {
		if err := cache.Invalidate(ctx, rdb, "k", time.Minute); err != nil {
			t.Fatal(err)
		}
	}

	steps := []struct {
		name   string
		before func() // between the reader's read and its fill
		fill   string
		want   string // "" = miss
	}{
		{"a first reader caches its copy", func() {}, "pending", "pending"},
		{"a reader that read before a change is refused", invalidate, "pending", ""},
		{"a reader that read after the change caches at once", func() {}, "running", "running"},
		{"two changes while reading: still refused", func() { invalidate(); invalidate() }, "running", ""},
	}
	for _, step := range steps {
		entry := read()
		step.before()
		if err := entry.Fill(ctx, rdb, row{step.fill}, time.Minute); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got, ok := read().Value()
		if (step.want == "" && ok) || (step.want != "" && got.Status != step.want) {
			t.Fatalf("%s: got %+v (present %v), want %q", step.name, got, ok, step.want)
		}
	}
}
