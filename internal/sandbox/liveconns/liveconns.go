// Package liveconns registers live connections to sandboxes (terminals, streaming execs,
// followed logs) in Redis with the instance that holds them and a heartbeat, so any replica can
// count them and a crashed replica's entries expire by themselves.
package liveconns

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/loop"
	"github.com/insien/orchestrator/internal/platform/metrics"
)

// Registry tracks live connections per sandbox: a sorted set per sandbox whose members are
// "<instance>/<connection id>" scored by the time their heartbeat lapses.
type Registry struct {
	rdb      *redis.Client
	instance string
	ttl      time.Duration
	log      *zap.Logger
	held     prometheus.Gauge
}

// Params are the registry's dependencies.
type Params struct {
	fx.In
	Redis   *redis.Client
	App     config.App     // the instance name marks this replica's entries
	Sandbox config.Sandbox // entries lapse sandbox.connection_ttl after their last heartbeat
	Log     *zap.Logger
	Metrics prometheus.Registerer `optional:"true"` // nil: nothing exported
}

// NewRegistry builds a registry.
func NewRegistry(p Params) *Registry {
	held := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: metrics.Namespace, Name: "live_connections",
		Help: "Live connections to sandboxes (terminals, streaming execs, followed logs) this replica holds."})
	if p.Metrics != nil {
		p.Metrics.MustRegister(held)
	}
	return &Registry{rdb: p.Redis, instance: p.App.InstanceName(), ttl: p.Sandbox.ConnectionTTL, log: p.Log.Named("connections"), held: held}
}

func key(sandboxID uuid.UUID) string { return "conns:" + sandboxID.String() }

// FullError is Acquire's refusal: the sandbox already holds its maximum of live connections.
type FullError struct{ Held int }

func (e *FullError) Error() string { return fmt.Sprintf("%d live connections, the maximum", e.Held) }

// admitScript drops lapsed entries, counts the live ones and registers the new one only when
// there are fewer than the limit, in one step: a count followed by a separate registration let
// concurrent requests on several replicas all see room and overshoot the limit.
var admitScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[4]) then return {0, held} end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, held + 1}`)

// Acquire registers a connection to a sandbox unless it already holds limit live ones (then a
// *FullError), and keeps it alive with a heartbeat every third of the TTL, calling onBeat (if
// any) at once and at each beat, until the returned release function is called. When Redis
// cannot be reached the connection is admitted unregistered, the heartbeat registering it once
// Redis answers again: the limit protects the service's resources and is not worth refusing
// every stream over.
func (r *Registry) Acquire(ctx context.Context, sandboxID uuid.UUID, limit int, onBeat func(context.Context)) (release func(), err error) {
	k := key(sandboxID)
	member := r.instance + "/" + uuid.NewString()
	now := time.Now()
	res, err := admitScript.Run(ctx, r.rdb, []string{k},
		now.UnixMilli(), member, now.Add(r.ttl).UnixMilli(), limit, (2 * r.ttl).Milliseconds()).Int64Slice()
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("admitting a connection: %w", ctx.Err())
	case err != nil:
		r.log.Debug("cannot count a sandbox's connections; admitting this one", zap.Stringer("sandbox", sandboxID), zap.Error(err))
	case len(res) != 2:
		return nil, fmt.Errorf("admitting a connection: unexpected reply %v", res)
	case res[0] == 0:
		return nil, &FullError{Held: int(res[1])}
	}
	return r.keepAlive(k, member, onBeat), nil
}

// keepAlive pushes the entry's expiry forward every third of the TTL until released, then
// removes it.
func (r *Registry) keepAlive(k, member string, onBeat func(context.Context)) func() {
	beat := func(ctx context.Context) {
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
	if onBeat != nil {
		onBeat(ctx)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		loop.Every(ctx, r.ttl/3, func(ctx context.Context) bool {
			beat(ctx)
			return false
		})
	})
	var once sync.Once
	r.held.Inc()
	return func() {
		once.Do(func() {
			r.held.Dec()
			cancel()
			wg.Wait()
			rmCtx, done := context.WithTimeout(context.Background(), 2*time.Second)
			defer done()
			_ = r.rdb.ZRem(rmCtx, k, member).Err()
		})
	}
}

// Count returns the live connections of a sandbox across every replica.
func (r *Registry) Count(ctx context.Context, sandboxID uuid.UUID) (int, error) {
	pipe := r.rdb.Pipeline()
	n := r.QueueCount(ctx, pipe, sandboxID)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("counting the connections of sandbox %s: %w", sandboxID, err)
	}
	return int(n.Val()), nil
}

// QueueCount queues on pipe, to share a round trip with other commands, the count of a sandbox's
// live connections across every replica: the returned command's value once the pipeline has
// run. Lapsed entries are not counted (Acquire drops them).
func (r *Registry) QueueCount(ctx context.Context, pipe redis.Pipeliner, sandboxID uuid.UUID) *redis.IntCmd {
	return pipe.ZCount(ctx, key(sandboxID), strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf")
}
