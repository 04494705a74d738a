package providers

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/health"
)

// NewRedis builds a lazily connecting go-redis client.
func NewRedis(cfg config.Redis) (*redis.Client, error) {
	opts, err := redis.ParseURL(cfg.URL.Reveal())
	if err != nil {
		return nil, fmt.Errorf("config: redis.url: not a valid Redis URL")
	}
	opts.PoolSize = cfg.PoolSize
	opts.DialTimeout = cfg.DialTimeout
	opts.ReadTimeout = cfg.ReadTimeout
	opts.WriteTimeout = cfg.WriteTimeout
	// Request deadlines bound Redis calls, not only the socket timeouts: the rate limiter relies on
	// it to give up on a hung Redis within its own short budget.
	opts.ContextTimeoutEnabled = true
	// Redis holds only copies and counters, and every caller has a fallback: fail fast when it is
	// down instead of go-redis's default of up to 4 attempts × 5 dials (seconds per command).
	opts.MaxRetries = 1
	opts.MaxRetryBackoff = 100 * time.Millisecond
	opts.DialerRetries = 1
	// Plain Redis rejects the maintenance-notification handshake and go-redis would log it forever.
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClient(opts), nil
}

// redisLog sends go-redis's internal messages (one per failed dial, per request while Redis is
// down) to zap at debug level: the readiness probe and the limiter already report outages.
type redisLog struct{ log *zap.SugaredLogger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) { l.log.Debugf(format, v...) }

func routeRedisLogs(log *zap.Logger) { redis.SetLogger(redisLog{log: log.Named("go-redis").Sugar()}) }

func watchRedis(lc fx.Lifecycle, rdb *redis.Client, h config.Health, log *zap.Logger) {
	watchDependency(lc, redisCheck(rdb), rdb.Close, h, log)
}

func redisCheck(rdb *redis.Client) health.Check {
	return health.Check{Name: "redis", Probe: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }}
}
