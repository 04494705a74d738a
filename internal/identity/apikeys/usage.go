package apikeys

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/repositories"
)

// usage keeps key uses off the request's path: a request only notes the time in memory, and the
// latest use of every key is written in one UPDATE per auth.last_used_resolution (and on List and
// at shutdown). last_used_at thus lags a use by at most the resolution, as it did when each
// replica wrote it at most once per resolution.
type usage struct {
	keys  *repositories.APIKeys
	limit int

	mu      sync.Mutex
	pending map[uuid.UUID]time.Time
}

func newUsage(keys *repositories.APIKeys, limit int) *usage {
	return &usage{keys: keys, limit: limit, pending: map[uuid.UUID]time.Time{}}
}

// record notes that key was used at. When max keys already wait, a use of another key is
// dropped, so memory stays bounded: that key's next use after the flush is recorded.
func (u *usage) record(key uuid.UUID, at time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if prev, ok := u.pending[key]; ok {
		if at.After(prev) {
			u.pending[key] = at
		}
	} else if len(u.pending) < u.limit {
		u.pending[key] = at
	}
}

// flush writes every noted use. On failure the uses are kept for the next flush, unless newer
// ones replaced them meanwhile.
func (u *usage) flush(ctx context.Context) error {
	u.mu.Lock()
	batch := u.pending
	u.pending = make(map[uuid.UUID]time.Time, len(batch))
	u.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := u.keys.TouchLastUsed(ctx, batch); err != nil {
		u.mu.Lock()
		for key, at := range batch {
			if _, newer := u.pending[key]; !newer && len(u.pending) < u.limit {
				u.pending[key] = at
			}
		}
		u.mu.Unlock()
		return fmt.Errorf("record the use of %d keys: %w", len(batch), err)
	}
	return nil
}
