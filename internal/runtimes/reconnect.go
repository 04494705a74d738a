package runtimes

import (
	"context"
	"time"
)

// Reconnection backoff of a driver's Watch: doubled after each failed attempt up to the maximum,
// reset by an attempt that connected.
const (
	WatchMinBackoff = 100 * time.Millisecond
	WatchMaxBackoff = 5 * time.Second
)

// KeepWatching runs attempt (one connection to a driver's event source, read until it breaks)
// again and again until ctx ends, waiting the backoff between attempts; broke is told why each
// attempt ended and how long until the next, for the driver to log.
func KeepWatching(ctx context.Context, attempt func(ctx context.Context) (connected bool, err error),
	broke func(err error, retryAfter time.Duration)) {
	backoff := WatchMinBackoff
	for {
		connected, err := attempt(ctx)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = WatchMinBackoff
		}
		broke(err, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, WatchMaxBackoff)
	}
}
