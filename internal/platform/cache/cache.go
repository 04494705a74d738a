// Package cache stores JSON copies of durable rows in Redis. Every reader falls back to Postgres,
// so a miss, a decode error or an unreachable Redis only costs a query.
//
// A reader that loaded a row just before a change must not put the old copy back after the change
// invalidated it. Every invalidation bumps the key's generation; a reader notes the generation
// with its (missed) read, before it asks Postgres, and its copy is stored only if the generation
// is still the same. A reader that starts after a change caches at once.
//
// Errors never name the key: keys can be derived from credentials.
package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// InvalidationWindow is how long an invalidation is remembered: longer than any request takes
// between reading a key and filling it.
const InvalidationWindow = 30 * time.Second

func generation(key string) string { return key + ":gen" }

// tombstone blocks Set for the window after an invalidation. Set and Get predate Read and Fill,
// and the tombstone goes with them.
func tombstone(key string) string { return key + ":invalidated" }

// Entry is one key as a reader found it: its copy, if any, and the generation Fill checks.
type Entry[T any] struct {
	key string
	cmd *redis.SliceCmd
}

// Read reads key and its generation in one round trip.
func Read[T any](ctx context.Context, rdb *redis.Client, key string) *Entry[T] {
	return &Entry[T]{key: key, cmd: rdb.MGet(ctx, key, generation(key))}
}

// Value is the cached copy; ok is false on a miss or any failure.
func (e *Entry[T]) Value() (value T, ok bool) {
	vals, err := e.cmd.Result()
	if err != nil || len(vals) != 2 {
		return value, false
	}
	data, isString := vals[0].(string)
	if !isString || json.Unmarshal([]byte(data), &value) != nil {
		return value, false
	}
	return value, true
}

var fillScript = redis.NewScript(`
if (redis.call("GET", KEYS[2]) or "") ~= ARGV[3] then return 0 end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return 1`)

// Fill stores value (read from Postgres after the entry was read) as the key's copy for ttl,
// unless the key was invalidated since. It does nothing when the read itself failed.
func (e *Entry[T]) Fill(ctx context.Context, rdb *redis.Client, value T, ttl time.Duration) error {
	vals, err := e.cmd.Result()
	if err != nil || len(vals) != 2 {
		return nil // Redis did not answer the read: the generation is unknown
	}
	gen, _ := vals[1].(string)
	data, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("cache: encode: %w", err)
	}
	if err := fillScript.Run(ctx, rdb, []string{e.key, generation(e.key)}, data, ttl.Milliseconds(), gen).Err(); err != nil {
		return fmt.Errorf("cache: fill: %w", err)
	}
	return nil
}

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

// Invalidate removes key on every replica at once, and refuses the copies of readers that read
// it before (for window).
func Invalidate(ctx context.Context, rdb *redis.Client, key string, window time.Duration) error {
	pipe := rdb.TxPipeline()
	pipe.Incr(ctx, generation(key))
	pipe.PExpire(ctx, generation(key), window)
	pipe.Set(ctx, tombstone(key), 1, window)
	pipe.Del(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cache: invalidate: %w", err)
	}
	return nil
}
