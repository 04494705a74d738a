// Package loop is the service's one ticker loop: background work (reaping, reconciling, heartbeats,
// keepalives, dependency retries) runs through Every instead of a hand-written select each time.
package loop

import (
	"context"
	"time"
)

// Every calls fn once per interval, the first time one interval from now, until ctx ends or fn
// reports that it is done. A call that outlasts the interval delays the next one; ticks are not
// queued up behind it.
func Every(ctx context.Context, interval time.Duration, fn func(context.Context) (done bool)) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if fn(ctx) {
			return
		}
	}
}

// EveryOrWake is Every for work that can also be asked for: fn runs at once, then whenever wake
// receives and at the latest one interval after its last run. Wakes during a run coalesce (a
// buffered wake channel of one holds the next).
func EveryOrWake(ctx context.Context, interval time.Duration, wake <-chan struct{}, fn func(context.Context)) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-wake:
		}
		fn(ctx)
		timer.Reset(interval)
	}
}
