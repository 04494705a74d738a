package liveconns_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/sandbox/liveconns"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/providers"
)

// TestAcquireIsAtomic: 40 connections opened at once through two replicas sharing Redis admit
// exactly the limit, and every release frees its slot.
func TestAcquireIsAtomic(t *testing.T) {
	rdb, err := providers.NewRedis(config.Redis{URL: config.Secret(testenv.RedisURL(t)), PoolSize: 50,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	replica := func(name string) *liveconns.Registry {
		return liveconns.NewRegistry(liveconns.Params{Redis: rdb, App: config.App{Instance: name},
			Sandbox: config.Sandbox{ConnectionTTL: 30 * time.Second}, Log: zap.NewNop()})
	}
	replicas := []*liveconns.Registry{replica("replica-a"), replica("replica-b")}
	const limit, attempts = 16, 40
	sandbox := uuid.New()
	var admitted, refused atomic.Int64
	var mu sync.Mutex
	var releases []func()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Go(func() {
			<-start
			release, err := replicas[i%2].Acquire(t.Context(), sandbox, limit, nil)
			var full *liveconns.FullError
			switch {
			case errors.As(err, &full):
				if full.Held != limit {
					t.Errorf("refused with %d held, want %d", full.Held, limit)
				}
				refused.Add(1)
			case err != nil:
				t.Errorf("Acquire: %v", err)
			default:
				admitted.Add(1)
				mu.Lock()
				releases = append(releases, release)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if admitted.Load() != limit || refused.Load() != attempts-limit {
		t.Fatalf("admitted %d and refused %d of %d, want %d and %d", admitted.Load(), refused.Load(), attempts, limit, attempts-limit)
	}
	if n, err := replicas[0].Count(t.Context(), sandbox); err != nil || n != limit {
		t.Fatalf("Count = %d, %v; want %d", n, err, limit)
	}
	for _, release := range releases {
		release()
	}
	if n, err := replicas[1].Count(t.Context(), sandbox); err != nil || n != 0 {
		t.Fatalf("Count after releasing = %d, %v; want 0", n, err)
	}
	release, err := replicas[1].Acquire(t.Context(), sandbox, limit, nil)
	if err != nil {
		t.Fatalf("Acquire after releasing: %v", err)
	}
	release()
}
