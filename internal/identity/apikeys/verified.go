package apikeys

import (
	"context"
	"fmt"
	"time"

	"github.com/maypok86/otter/v2"
)

// verified is this replica's cache of keys Postgres vouched for, keyed by digest (never the
// secret), so a repeated request authenticates without a network round trip. An entry lives
// auth.key_local_ttl at most, and never past its key's expiry: the lifetime bounds how long a
// revocation this replica was not told about can go unseen.
type verified struct {
	cache *otter.Cache[string, Identity]
}

func newVerified(size int, ttl time.Duration) (*verified, error) {
	cache, err := otter.New(&otter.Options[string, Identity]{
		MaximumSize: size,
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[string, Identity]) time.Duration {
			if exp := e.Value.ExpiresAt; exp != nil {
				return max(0, min(ttl, time.Until(*exp)))
			}
			return ttl
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("build the key cache: %w", err)
	}
	return &verified{cache: cache}, nil
}

// get returns the cached identity of digest, or calls load once for every caller waiting on the
// same digest and caches its result. A revocation (evict) during the load discards the loaded
// identity and loads again, so a lookup racing a revocation cannot cache the key back. Errors
// are not cached.
func (v *verified) get(ctx context.Context, digest []byte, load func(context.Context) (Identity, error)) (Identity, error) {
	return v.cache.Get(ctx, string(digest), otter.LoaderFunc[string, Identity](func(ctx context.Context, _ string) (Identity, error) {
		return load(ctx)
	}))
}

// evict forgets one key at once.
func (v *verified) evict(digest []byte) { v.cache.Invalidate(string(digest)) }

// evictAll forgets every key, after revocations may have been missed.
func (v *verified) evictAll() { v.cache.InvalidateAll() }

// close stops the cache's clean-up goroutine.
func (v *verified) close() { v.cache.StopAllGoroutines() }
