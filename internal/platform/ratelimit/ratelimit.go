// Package ratelimit throttles API callers with a GCRA token bucket kept in Redis, so every replica
// of the service draws on one shared budget per caller.
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
// answers 503 rate_limiter_unavailable. Each check waits at most 250 ms for Redis, and after a
// failure Redis is left alone for a second, so an outage costs requests no latency.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
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
	// pauseAfterFailure is how long the limiter stops asking Redis after a failed check and applies
	// the failure mode at once: go-redis retries a refused connection until our timeout, so without
	// the pause every request of an outage would wait redisTimeout.
	pauseAfterFailure = time.Second
	// warnEvery spaces out the warning logged while Redis fails, so an outage is not a log flood.
	warnEvery = time.Minute
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
	principal redis_rate.Limit
	anonymous redis_rate.Limit
	rl        *redis_rate.Limiter
	log       *zap.Logger

	pausedUntil atomic.Int64 // unix nanoseconds until which Redis is not asked, after a failure
	lastWarn    atomic.Int64 // unix nanoseconds of the last "Redis failed" warning, 0 = never
	suppressed  atomic.Int64 // failures not logged since that warning
}

// Params is what a Limiter is built from.
type Params struct {
	fx.In
	RateLimit config.RateLimit
	Redis     *redis.Client
	Log       *zap.Logger
}

// New builds a Limiter over p.Redis. It works without Fx; p.RateLimit is assumed valid
// (config.Validate), and a nil p.Log logs nothing.
func New(p Params) *Limiter {
	log := p.Log
	if log == nil {
		log = zap.NewNop()
	}
	cfg := p.RateLimit
	return &Limiter{
		enabled:   cfg.Enabled,
		failOpen:  cfg.FailureMode != "closed",
		principal: redis_rate.Limit{Rate: cfg.PrincipalPerMin, Period: time.Minute, Burst: cfg.PrincipalBurst},
		anonymous: redis_rate.Limit{Rate: cfg.AnonymousPerMin, Period: time.Minute, Burst: cfg.AnonymousBurst},
		rl:        redis_rate.NewLimiter(p.Redis),
		log:       log.Named("ratelimit"),
	}
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
	limit := l.limit(class)
	ctx := c.Request.Context()
	res, err := l.take(ctx, class.String()+":"+key, limit)
	if err != nil {
		return l.failed(c, class, err)
	}
	c.Header(HeaderLimit, strconv.Itoa(limit.Burst))
	c.Header(HeaderRemaining, strconv.Itoa(remaining(res)))
	c.Header(HeaderReset, strconv.Itoa(ceilSeconds(res.ResetAfter)))
	if res.Allowed > 0 {
		return true
	}
	retry := max(1, ceilSeconds(res.RetryAfter))
	c.Header(HeaderRetryAfter, strconv.Itoa(retry))
	middleware.WriteError(c, apierror.New(http.StatusTooManyRequests, "rate_limited",
		"too many requests; retry in %d s", retry))
	return false
}

func (l *Limiter) limit(class Class) redis_rate.Limit {
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

// take runs the GCRA script, giving up after redisTimeout: the client bounds its socket I/O by
// the context's deadline (providers.NewRedis sets ContextTimeoutEnabled).
func (l *Limiter) take(parent context.Context, key string, limit redis_rate.Limit) (*redis_rate.Result, error) {
	if time.Now().UnixNano() < l.pausedUntil.Load() {
		return nil, errPaused
	}
	ctx, cancel := context.WithTimeout(parent, redisTimeout)
	defer cancel()
	res, err := l.rl.Allow(ctx, key, limit)
	if err != nil {
		return nil, fmt.Errorf("rate limit check: %w", err)
	}
	return res, nil
}

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
		l.pausedUntil.Store(time.Now().Add(pauseAfterFailure).UnixNano())
		l.warn(class, err)
	}
	if l.failOpen {
		return true
	}
	middleware.WriteError(c, apierror.Unavailable("rate_limiter_unavailable",
		"rate limiting is temporarily unavailable; retry shortly"))
	return false
}

// warn logs a Redis failure at most once per warnEvery, with the count of failures it held back.
// The bucket key is never logged: it may name a user or an API key.
func (l *Limiter) warn(class Class, err error) {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if (last != 0 && now-last < int64(warnEvery)) || !l.lastWarn.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	msg := "rate limiter unavailable: rejecting requests"
	if l.failOpen {
		msg = "rate limiter unavailable: allowing requests unlimited"
	}
	l.log.Warn(msg, zap.Stringer("class", class), zap.Error(err),
		zap.Int64("suppressed_since_last_warning", l.suppressed.Swap(0)))
}

// remaining is the whole tokens left after the request. redis_rate's own Remaining is a float the
// script truncates, and the script's arithmetic on an epoch-sized clock leaves it a hair under the
// whole number: a full bucket of 5 reports 3 after one request. Recompute it from ResetAfter (how
// long the tokens in use take to come back), with a tolerance far above that noise (~1e-7 token)
// and far below a token.
func remaining(res *redis_rate.Result) int {
	if res.Allowed == 0 {
		return 0
	}
	emission := res.Limit.Period.Seconds() / float64(res.Limit.Rate)
	inUse := res.ResetAfter.Seconds() / emission
	n := int(math.Floor(float64(res.Limit.Burst) - inUse + 1e-3))
	return max(0, min(n, res.Limit.Burst))
}

// ceilSeconds rounds d up to whole seconds; negative durations (redis_rate's "not applicable") are 0.
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
