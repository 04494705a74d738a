package ratelimit

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// limit is one class's GCRA parameters: a token comes back every emission, and a full bucket
// holds burst tokens, burstOffset of debt.
type limit struct {
	burst       int
	emission    time.Duration
	burstOffset time.Duration
}

func newLimit(perMinute, burst int) limit {
	emission := time.Minute / time.Duration(perMinute)
	return limit{burst: burst, emission: emission, burstOffset: emission * time.Duration(burst)}
}

// bucket is this replica's copy of a shared bucket. tat ("theoretical arrival time") is when the
// bucket will be full again: debt = tat - now is how much of the burst is in use.
type bucket struct {
	lim limit

	mu         sync.Mutex
	tat        time.Time
	pending    int       // requests let through here and not yet charged to Redis
	used       time.Time // the last request
	reconciled time.Time // when Redis last answered for this bucket; zero = never
}

// decision is the outcome of one request: whether it may go on, and the bucket's debt after it.
type decision struct {
	allowed bool
	debt    time.Duration
}

// remaining is the whole tokens left after the request. Debts read back from Redis are floats
// computed on an epoch-sized clock, a hair over the whole number (~1e-7 token): the tolerance is
// far above that noise and far below a token.
func (d decision) remaining(lim limit) int {
	if !d.allowed {
		return 0
	}
	inUse := float64(d.debt) / float64(lim.emission)
	n := int(math.Floor(float64(lim.burst) - inUse + 1e-3))
	return max(0, min(n, lim.burst))
}

// retryAfter is how long until the next token, for a denied request.
func (d decision) retryAfter(lim limit) time.Duration {
	return d.debt + lim.emission - lim.burstOffset
}

// admit applies GCRA to one request at now, from this replica's copy.
func (b *bucket) admit(lim limit, now time.Time) decision {
	tat := b.tat
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(lim.emission)
	if next.Sub(now) > lim.burstOffset {
		return decision{allowed: false, debt: tat.Sub(now)}
	}
	b.tat = next
	b.pending++
	return decision{allowed: true, debt: next.Sub(now)}
}

// take decides one request of the bucket named key.
func (l *Limiter) take(ctx context.Context, key string, lim limit) (decision, error) {
	if l.paused() {
		return decision{}, errPaused
	}
	b := l.bucket(key, lim)
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.used = now
	if now.Sub(b.reconciled) < trustFor {
		return b.admit(lim, now), nil
	}
	// Decided in Redis, holding the bucket: its other requests would need the round trip too.
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	allowed, debt, err := l.charge(ctx, key, lim, b.pending, true)
	if err != nil {
		return decision{}, fmt.Errorf("rate limit check: %w", err)
	}
	at := time.Now()
	b.pending = 0
	b.tat, b.reconciled = at.Add(debt), at
	return decision{allowed: allowed, debt: debt}, nil
}

// bucket returns this replica's copy of key, creating it (unreconciled) if it has room; a bucket
// it has no room for is decided in Redis every time.
func (l *Limiter) bucket(key string, lim limit) *bucket {
	l.mu.RLock()
	b, ok := l.buckets[key]
	l.mu.RUnlock()
	if ok {
		return b
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[key]; ok {
		return b
	}
	b = &bucket{lim: lim}
	if len(l.buckets) < maxBuckets {
		l.buckets[key] = b
	}
	return b
}

// chargeScript charges the shared bucket KEYS[1] for ARGV[3] requests already let through, then,
// when ARGV[4] is 1, decides one more (GCRA, as redis_rate does, on Redis's clock counted from
// 2017 so that doubles keep microseconds). It returns whether that one was allowed and the
// bucket's debt in seconds: a duration, so replicas' clocks never meet.
var chargeScript = redis.NewScript(`
local emission = tonumber(ARGV[1])
local burst_offset = tonumber(ARGV[2])
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
tat = math.max(tat, now) + tonumber(ARGV[3]) * emission
local allowed = 0
if ARGV[4] == "1" and tat + emission - now <= burst_offset then
  tat = tat + emission
  allowed = 1
end
local debt = tat - now
if debt > 0 then
  redis.call("SET", KEYS[1], tostring(tat), "PX", math.ceil(debt * 1000))
end
return {allowed, tostring(debt)}`)

// charge runs chargeScript for one bucket.
func (l *Limiter) charge(ctx context.Context, key string, lim limit, charged int, decide bool) (allowed bool, debt time.Duration, err error) {
	vals, err := chargeScript.Run(ctx, l.rdb, []string{key}, chargeArgs(lim, charged, decide)...).Slice()
	if err != nil {
		return false, 0, err
	}
	return parseCharge(vals)
}

func chargeArgs(lim limit, charged int, decide bool) []any {
	d := "0"
	if decide {
		d = "1"
	}
	return []any{lim.emission.Seconds(), lim.burstOffset.Seconds(), charged, d}
}

func parseCharge(vals []any) (allowed bool, debt time.Duration, err error) {
	if len(vals) != 2 {
		return false, 0, fmt.Errorf("rate limit script: %d values, want 2", len(vals))
	}
	n, ok1 := vals[0].(int64)
	s, ok2 := vals[1].(string)
	seconds, perr := strconv.ParseFloat(s, 64)
	if !ok1 || !ok2 || perr != nil {
		return false, 0, fmt.Errorf("rate limit script: unexpected reply %v", vals)
	}
	return n == 1, max(0, time.Duration(seconds*float64(time.Second))), nil
}
