// Package cache stores JSON copies of durable rows in Redis. Every reader falls back to Postgres,
// so a miss, a decode error or an unreachable Redis only costs a query.
package cache

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"
)

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

// Set stores value as JSON under key for ttl.
func Set(ctx context.Context, rdb *redis.Client, key string, value any, ttl time.Duration) error {
	data, err := json.Marshal(value)
	if err != nil {
		return err
	}
	return rdb.Set(ctx, key, data, ttl).Err()
}
