package lifecycle

import (
	"context"
	"runtime"
	"sync"

	"golang.org/x/sync/semaphore"
)

// warmAdmission lets warm creates through a few at a time, in the order they came. A warm create
// is CPU bound end to end (this service, Postgres, the engine's inspect, all on the same host):
// a burst of twenty admitted at once shares the cores and every one of them finishes near the end
// of the burst; admitted first come, first served, half of them are done by its middle. Slots are
// held from the claim to the running row only; a create the pool cannot serve leaves as soon as
// its transaction has found no member, before its cold start (which mostly waits on the engine
// and would gain nothing). The rare claim of a member that died since the pool looked starts cold
// inside its slot.
type warmAdmission struct{ slots *semaphore.Weighted }

// newWarmAdmission admits twice as many as there are cores: a warm create also waits on round
// trips, during which another can use the core.
func newWarmAdmission() warmAdmission {
	return warmAdmission{slots: semaphore.NewWeighted(int64(2 * runtime.GOMAXPROCS(0)))}
}

// enter waits for a slot (or ctx); leave may be called more than once.
func (a warmAdmission) enter(ctx context.Context) (leave func(), err error) {
	if err := a.slots.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	return sync.OnceFunc(func() { a.slots.Release(1) }), nil
}
