// Package ratelimit throttles API callers with GCRA token buckets shared by every replica through
// Redis, without a Redis round trip on a busy bucket's requests.
//
// Each replica decides from its own copy of a bucket and reconciles it with Redis in the
// background (reconcileEvery): it charges the shared bucket for the requests it let through and
// takes back the shared state, which includes every other replica's charges. A bucket this
// replica has not reconciled within trustFor (a new or idle one) is decided in Redis, on the
// request's path: one round trip. Measured on a 2-core machine, a Redis round trip per request
// cost an authenticated request about half its throughput; the local copy costs nothing. The
// rate is shared exactly (every request let through is charged); a burst can be overdrawn by
// what other replicas let through within one reconciliation, and the shared bucket then pays it
// back before it admits more.
//
// Response headers follow draft-ietf-httpapi-ratelimit-headers (the RateLimit-Limit /
// RateLimit-Remaining / RateLimit-Reset form), read for a token bucket:
//
//   - RateLimit-Limit: the bucket capacity (the burst), i.e. the most requests a caller can make
//     at once. It is the quota that RateLimit-Remaining counts down from, so Remaining <= Limit.
//   - RateLimit-Remaining: whole tokens left in the bucket after this request (0 when denied).
//   - RateLimit-Reset: whole seconds, rounded up, until the bucket is full again, i.e. until
//     Remaining would equal Limit; 0 or more.
//   - Retry-After (denied requests only): whole seconds, rounded up and at least 1, until the next
//     token, i.e. until the same request would be allowed.
//
// Tokens come back at the configured per-minute rate, one every minute/rate.
//
// When Redis fails, config failure_mode "open" lets requests through without headers and "closed"
// answers 503 rate_limiter_unavailable, from the first failed reconciliation or check until one
// succeeds. Each check waits at most 250 ms for Redis, and after a failure Redis is left alone
// for a second, so an outage costs requests no latency.
package ratelimit

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/metrics"
	"github.com/insien/orchestrator/internal/platform/middleware"
)

// Response headers written on every request the limiter decides on.
const (
	HeaderLimit      = "RateLimit-Limit"
	HeaderRemaining  = "RateLimit-Remaining"
	HeaderReset      = "RateLimit-Reset"
	HeaderRetryAfter = "Retry-After"
)

const (
	// redisTimeout bounds one bucket check, so a slow or hung Redis delays a request by at most this.
	redisTimeout = 250 * time.Millisecond
	// pauseAfterFailure is how long the limiter stops asking Redis after a failure and applies the
	// failure mode at once: go-redis retries a refused connection until our timeout, so without
	// the pause every request of an outage would wait redisTimeout. It is at least trustFor, so
	// every bucket is checked in Redis again when the pause ends.
	pauseAfterFailure = time.Second
	// warnEvery spaces out the warning logged while Redis fails, so an outage is not a log flood.
	warnEvery = time.Minute
	// reconcileEvery is how often busy buckets are reconciled with Redis: how late one replica
	// learns what the others let through.
	reconcileEvery = 100 * time.Millisecond
	// trustFor is how long a bucket is decided locally after its last reconciliation; after that
	// (an idle bucket, or Redis failing) the next request is decided in Redis.
	trustFor = time.Second
	// maxBuckets bounds the buckets held in memory; beyond it, requests of new buckets are
	// decided in Redis, one round trip each, as if the bucket were idle.
	maxBuckets = 100_000
)

// Class selects which configured limit a bucket uses; each class has its own buckets.
type Class int

const (
	// Principal is the class of authenticated callers (a user or an API key).
	Principal Class = iota + 1
	// Anonymous is the class of unauthenticated callers, keyed by client IP.
	Anonymous
)

// String names the class; it is also the bucket's key prefix.
func (c Class) String() string {
	switch c {
	case Principal:
		return "principal"
	case Anonymous:
		return "anonymous"
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Limiter decides whether a request may proceed and tells the client its remaining budget.
type Limiter struct {
	enabled   bool
	failOpen  bool
	principal limit
	anonymous limit
	rdb       *redis.Client
	log       *zap.Logger

	mu      sync.RWMutex
	buckets map[string]*bucket // by Redis key

	stop context.CancelFunc
	done chan struct{}

	pausedUntil atomic.Int64 // unix nanoseconds until which Redis is not asked, after a failure
	lastWarn    atomic.Int64 // unix nanoseconds of the last "Redis failed" warning, 0 = never
	suppressed  atomic.Int64 // failures not logged since that warning

	refusals *prometheus.CounterVec
}

// Params is what a Limiter is built from.
type Params struct {
	fx.In
	RateLimit config.RateLimit
	Redis     *redis.Client
	Log       *zap.Logger
	Metrics   prometheus.Registerer `optional:"true"`
}

// New builds a Limiter over p.Redis; Start runs its reconciliation. It works without Fx;
// p.RateLimit is assumed valid (config.Validate), a nil p.Log logs nothing and a nil p.Metrics
// exports nothing.
func New(p Params) *Limiter {
	log := p.Log
	if log == nil {
		log = zap.NewNop()
	}
	cfg := p.RateLimit
	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "rate_limit",
		Name: "refusals_total", Help: "Requests refused by the rate limiter, by class (principal, anonymous) and reason (limited: 429; unavailable: 503, Redis failed and the limiter fails closed)."},
		[]string{"class", "reason"})
	for _, class := range []Class{Principal, Anonymous} {
		for _, reason := range []string{"limited", "unavailable"} {
			refusals.WithLabelValues(class.String(), reason) // present at 0 before the first refusal
		}
	}
	if p.Metrics != nil {
		p.Metrics.MustRegister(refusals)
	}
	return &Limiter{
		refusals:  refusals,
		enabled:   cfg.Enabled,
		failOpen:  cfg.FailureMode != "closed",
		principal: newLimit(cfg.PrincipalPerMin, cfg.PrincipalBurst),
		anonymous: newLimit(cfg.AnonymousPerMin, cfg.AnonymousBurst),
		rdb:       p.Redis,
		log:       log.Named("ratelimit"),
		buckets:   map[string]*bucket{},
	}
}

// Start reconciles the buckets with Redis in the background until Stop.
func (l *Limiter) Start(context.Context) error {
	if !l.enabled {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop, l.done = cancel, make(chan struct{})
	go l.reconcileLoop(ctx)
	return nil
}

// Stop ends the reconciliation, charging Redis for what was let through since the last one.
func (l *Limiter) Stop(ctx context.Context) error {
	if l.stop == nil {
		return nil
	}
	l.stop()
	<-l.done
	l.reconcileAll(ctx)
	return nil
}

// ByIP limits unauthenticated routes per client IP (gin's ClientIP, which honours only the
// trusted proxies).
func (l *Limiter) ByIP() gin.HandlerFunc {
	return func(c *gin.Context) {
		l.Allow(c, Anonymous, c.ClientIP())
	}
}

// Allow takes one token from the bucket "<class>:<key>" and reports whether the request may go on.
// It sets the RateLimit-* headers; when it returns false it has written the error response
// (429 rate_limited, or 503 when Redis fails and the limiter fails closed) and aborted the chain.
// Nothing is limited, and no header is set, when the limiter is disabled.
func (l *Limiter) Allow(c *gin.Context, class Class, key string) bool {
	if !l.enabled {
		return true
	}
	lim := l.limit(class)
	d, err := l.take(c.Request.Context(), "rate:"+class.String()+":"+key, lim)
	if err != nil {
		return l.failed(c, class, err)
	}
	c.Header(HeaderLimit, strconv.Itoa(lim.burst))
	c.Header(HeaderRemaining, strconv.Itoa(d.remaining(lim)))
	c.Header(HeaderReset, strconv.Itoa(ceilSeconds(d.debt)))
	if d.allowed {
		return true
	}
	l.refusals.WithLabelValues(class.String(), "limited").Inc()
	retry := max(1, ceilSeconds(d.retryAfter(lim)))
	c.Header(HeaderRetryAfter, strconv.Itoa(retry))
	middleware.WriteError(c, apierror.New(http.StatusTooManyRequests, "rate_limited",
		"too many requests; retry in %d s", retry))
	return false
}

func (l *Limiter) limit(class Class) limit {
	switch class {
	case Principal:
		return l.principal
	case Anonymous:
		return l.anonymous
	}
	panic("ratelimit: unknown " + class.String()) // a programming error, turned into a 500 by Recovery
}

// errPaused stands in for Redis's error while the limiter pauses after a failure.
var errPaused = errors.New("redis failed within the last second; not asked again yet")

// failed applies the failure mode when the bucket could not be read.
func (l *Limiter) failed(c *gin.Context, class Class, err error) bool {
	if ctx := c.Request.Context(); ctx.Err() != nil {
		// The client left or the request timed out: not Redis's fault, and nobody waits for an answer.
		middleware.WriteError(c, middleware.Classify(ctx, ctx.Err()))
		return false
	}
	if errors.Is(err, errPaused) {
		l.suppressed.Add(1) // the failure that started the pause has been counted or logged
	} else {
		l.redisFailed(class.String(), err)
	}
	if l.failOpen {
		return true
	}
	l.refusals.WithLabelValues(class.String(), "unavailable").Inc()
	middleware.WriteError(c, apierror.Unavailable("rate_limiter_unavailable",
		"rate limiting is temporarily unavailable; retry shortly"))
	return false
}

// paused reports whether Redis failed within pauseAfterFailure.
func (l *Limiter) paused() bool { return time.Now().UnixNano() < l.pausedUntil.Load() }

// redisFailed starts a pause and warns, at most once per warnEvery, with the count of failures it
// held back. The bucket key is never logged: it may name a user or an API key.
func (l *Limiter) redisFailed(what string, err error) {
	now := time.Now()
	l.pausedUntil.Store(now.Add(pauseAfterFailure).UnixNano())
	last := l.lastWarn.Load()
	if (last != 0 && now.UnixNano()-last < int64(warnEvery)) || !l.lastWarn.CompareAndSwap(last, now.UnixNano()) {
		l.suppressed.Add(1)
		return
	}
	msg := "rate limiter unavailable: rejecting requests"
	if l.failOpen {
		msg = "rate limiter unavailable: allowing requests unlimited"
	}
	l.log.Warn(msg, zap.String("class", what), zap.Error(err),
		zap.Int64("suppressed_since_last_warning", l.suppressed.Swap(0)))
}

// ceilSeconds rounds d up to whole seconds; negative durations are 0.
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
