// Package cache stores JSON copies of durable rows in Redis. Every reader falls back to Postgres,
// so a miss, a decode error or an unreachable Redis only costs a query.
//
// Invalidation leaves a short tombstone: a reader that loaded the row just before a change must
// not put the old copy back after the change invalidated it.
//
// Errors never name the key: keys can be derived from credentials (an API key's hash).
package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// InvalidationWindow is how long a tombstone blocks re-caching: longer than any request takes
// between reading a row and caching it.
const InvalidationWindow = 30 * time.Second

func tombstone(key string) string { return key + ":invalidated" }

// Get reads key into a new T; ok is false on a miss or any failure.
func Get[T any](ctx context.Context, rdb *redis.Client, key string) (value T, ok bool) {
	data, err := rdb.Get(ctx, key).Bytes()
	if err != nil {
		return value, false
	}
	if json.Unmarshal(data, &value) != nil {
		return value, false
	}
	return value, true
}

var setScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[2]) == 1 then return 0 end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return 1`)

// Set stores value as JSON under key for ttl, unless key was invalidated within the window.
func Set(ctx context.Context, rdb *redis.Client, key string, value any, ttl time.Duration) error {
	data, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("cache: encode: %w", err)
	}
	if err := setScript.Run(ctx, rdb, []string{key, tombstone(key)}, data, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("cache: set: %w", err)
	}
	return nil
}

// Invalidate removes key on every replica at once and blocks re-caching for window.
func Invalidate(ctx context.Context, rdb *redis.Client, key string, window time.Duration) error {
	pipe := rdb.TxPipeline()
	pipe.Set(ctx, tombstone(key), 1, window)
	pipe.Del(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cache: invalidate: %w", err)
	}
	return nil
}
