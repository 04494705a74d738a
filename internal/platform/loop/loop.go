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
