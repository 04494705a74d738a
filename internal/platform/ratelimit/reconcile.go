package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/insien/orchestrator/internal/platform/loop"
)

// reconcileLoop reconciles every busy bucket once per reconcileEvery until ctx ends.
func (l *Limiter) reconcileLoop(ctx context.Context) {
	defer close(l.done)
	loop.Every(ctx, reconcileEvery, func(ctx context.Context) bool {
		l.reconcileAll(ctx)
		return false
	})
}

// reconciliation is one bucket's part of a reconcileAll.
type reconciliation struct {
	key     string
	b       *bucket
	charged int
	cmd     *redis.Cmd
}

// reconcileAll charges Redis for the requests every bucket let through since its last
// reconciliation and takes back the shared debt, in one round trip for all of them. Buckets idle
// for trustFor are forgotten. On failure the charges wait for the next round and
// the limiter applies its failure mode meanwhile.
func (l *Limiter) reconcileAll(ctx context.Context) {
	if l.paused() {
		return
	}
	batch := l.collect(time.Now())
	if len(batch) == 0 {
		return
	}
	err := l.send(ctx, batch)
	if isNoScript(err) { // Redis restarted and forgot the script
		if err = chargeScript.Load(ctx, l.rdb).Err(); err == nil {
			err = l.send(ctx, batch)
		}
	}
	at := time.Now()
	for _, r := range batch {
		var debt time.Duration
		if err == nil {
			debt, err = reconciled(r.cmd)
		}
		r.b.mu.Lock()
		if err != nil {
			r.b.pending += r.charged
		} else {
			r.b.tat = at.Add(debt + time.Duration(r.b.pending)*r.b.lim.emission)
			r.b.reconciled = at
		}
		r.b.mu.Unlock()
	}
	if err != nil && ctx.Err() == nil {
		l.redisFailed("reconciliation", err)
	}
}

// collect takes the charges of every bucket used within trustFor, so that its copy stays fresh
// while it is trusted, and forgets the others.
func (l *Limiter) collect(now time.Time) []reconciliation {
	var batch []reconciliation
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, b := range l.buckets {
		b.mu.Lock()
		if b.pending > 0 || now.Sub(b.used) < trustFor {
			batch = append(batch, reconciliation{key: key, b: b, charged: b.pending})
			b.pending = 0
		} else {
			delete(l.buckets, key)
			b.reconciled = time.Time{} // a request holding it already goes to Redis
		}
		b.mu.Unlock()
	}
	return batch
}

// send runs the charge script of every bucket of batch in one pipeline.
func (l *Limiter) send(ctx context.Context, batch []reconciliation) error {
	// Off the requests' path: as long as a bucket stays trusted, not a request's short timeout.
	ctx, cancel := context.WithTimeout(ctx, trustFor)
	defer cancel()
	pipe := l.rdb.Pipeline()
	for i := range batch {
		r := &batch[i]
		r.cmd = chargeScript.EvalSha(ctx, pipe, []string{r.key}, chargeArgs(r.b.lim, r.charged, false)...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("reconcile %d rate limit buckets: %w", len(batch), err)
	}
	return nil
}

func isNoScript(err error) bool { return redis.HasErrorPrefix(err, "NOSCRIPT") }

// reconciled reads the debt a reconciliation returned.
func reconciled(cmd *redis.Cmd) (time.Duration, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return 0, fmt.Errorf("reconcile a rate limit bucket: %w", err)
	}
	_, debt, err := parseCharge(vals)
	return debt, err
}
