// Package connections registers live connections to sandboxes (terminals, streaming execs,
// followed logs) in Redis with the instance that holds them and a heartbeat, so any replica can
// count them and a crashed replica's entries expire by themselves.
package connections

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/config"
)

// Module provides the registry.
var Module = fx.Module("connections", fx.Provide(NewRegistryFromConfig))

// Registry tracks live connections per sandbox: a sorted set per sandbox whose members are
// "<instance>/<connection id>" scored by the time their heartbeat lapses.
type Registry struct {
	rdb      *redis.Client
	instance string
	ttl      time.Duration
	log      *zap.Logger
}

// NewRegistryFromConfig is NewRegistry for the Fx graph.
func NewRegistryFromConfig(rdb *redis.Client, app config.App, cfg config.Sandbox, log *zap.Logger) *Registry {
	return NewRegistry(rdb, app.InstanceName(), cfg.ConnectionTTL, log)
}

// NewRegistry builds a registry; entries lapse ttl after their last heartbeat.
func NewRegistry(rdb *redis.Client, instance string, ttl time.Duration, log *zap.Logger) *Registry {
	return &Registry{rdb: rdb, instance: instance, ttl: ttl, log: log.Named("connections")}
}

func key(sandboxID uuid.UUID) string { return "conns:" + sandboxID.String() }

// Open registers a connection and keeps it alive with a heartbeat every third of the TTL,
// calling onBeat (if any) at each beat, until the returned close function is called.
func (r *Registry) Open(sandboxID uuid.UUID, onBeat func(context.Context)) (close func()) {
	member := r.instance + "/" + uuid.NewString()
	beat := func(ctx context.Context) {
		k := key(sandboxID)
		pipe := r.rdb.Pipeline()
		pipe.ZAdd(ctx, k, redis.Z{Score: float64(time.Now().Add(r.ttl).UnixMilli()), Member: member})
		pipe.PExpire(ctx, k, 2*r.ttl)
		if _, err := pipe.Exec(ctx); err != nil {
			r.log.Debug("connection heartbeat failed", zap.Error(err))
		}
		if onBeat != nil {
			onBeat(ctx)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	beat(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(r.ttl / 3)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				beat(ctx)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			rmCtx, done := context.WithTimeout(context.Background(), 2*time.Second)
			defer done()
			_ = r.rdb.ZRem(rmCtx, key(sandboxID), member).Err()
		})
	}
}

// Count returns the live connections of a sandbox across every replica, dropping lapsed ones.
func (r *Registry) Count(ctx context.Context, sandboxID uuid.UUID) (int, error) {
	k := key(sandboxID)
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	pipe := r.rdb.Pipeline()
	pipe.ZRemRangeByScore(ctx, k, "-inf", "("+now)
	card := pipe.ZCard(ctx, k)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	return int(card.Val()), nil
}
