package cache

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// publishTimeout bounds an eviction's announcement: the eviction is already in force on this
// replica, and one that misses it drops the value within the local lifetime anyway.
const publishTimeout = time.Second

// Local is this replica's in-memory copy of values read from Postgres, for reads that must not
// wait for the network. Every replica evicts a key when one announces it on the Redis channel
// (within a second); a replica that misses the announcement (Redis down, or resubscribing) holds
// the value at most the local lifetime. Every (re)subscription empties the copy, since the
// announcements sent meanwhile are lost.
//
// The size-bounded, expiring map is otter's (maypok86/otter/v2): its loading Get joins the
// concurrent misses of a key into one load and discards a load that an eviction raced, so a
// reader cannot put back a value evicted while it was reading.
type Local[V any] struct {
	cache   *otter.Cache[string, V]
	rdb     *redis.Client
	channel string

	sub  *redis.PubSub
	done sync.WaitGroup
}

// NewLocal builds a copy of at most size values, each kept ttl at most, and less when lifetime
// (if not nil) says so for a value. Start listens to channel.
func NewLocal[V any](rdb *redis.Client, channel string, size int, ttl time.Duration, lifetime func(V) time.Duration) (*Local[V], error) {
	c, err := otter.New(&otter.Options[string, V]{
		MaximumSize: size,
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[string, V]) time.Duration {
			if lifetime != nil {
				return max(0, min(ttl, lifetime(e.Value)))
			}
			return ttl
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("build the local cache: %w", err)
	}
	return &Local[V]{cache: c, rdb: rdb, channel: channel}, nil
}

// Get returns the copy of key, or calls load once for every caller waiting on key and keeps its
// value. Errors are returned, not kept.
func (l *Local[V]) Get(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	return l.cache.Get(ctx, key, otter.LoaderFunc[string, V](func(ctx context.Context, _ string) (V, error) {
		return load(ctx)
	}))
}

// Evict drops keys here at once, then announces them to every replica. The error says only that
// the announcement failed: the other replicas then drop the keys within the local lifetime.
func (l *Local[V]) Evict(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		l.cache.Invalidate(key)
	}
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	pipe := l.rdb.Pipeline()
	for _, key := range keys {
		pipe.Publish(ctx, l.channel, key)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("announce %d evictions: %w", len(keys), err)
	}
	return nil
}

// Start listens for the announcements of every replica until Stop. It does not wait for Redis:
// go-redis subscribes when it can, and resubscribes after every reconnection.
func (l *Local[V]) Start(context.Context) error {
	l.sub = l.rdb.Subscribe(context.Background()) // no channel yet: no I/O here
	l.done.Go(func() {
		// On failure the channel is still recorded, and go-redis subscribes when it reconnects.
		_ = l.sub.Subscribe(context.Background(), l.channel)
		for msg := range l.sub.ChannelWithSubscriptions() {
			switch msg := msg.(type) {
			case *redis.Subscription:
				if msg.Kind == "subscribe" {
					l.cache.InvalidateAll()
				}
			case *redis.Message:
				l.cache.Invalidate(msg.Payload)
			}
		}
	})
	return nil
}

// Stop ends the subscription and the cache's clean-up goroutine.
func (l *Local[V]) Stop(context.Context) error {
	if l.sub != nil {
		_ = l.sub.Close()
		l.done.Wait()
	}
	l.cache.StopAllGoroutines()
	return nil
}
