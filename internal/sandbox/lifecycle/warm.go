package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/actor"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/internal/sandbox/templates"
	"github.com/insien/orchestrator/repositories"
)

// maxWarmBatch bounds the creates one warm transaction serves.
const maxWarmBatch = 32

// warmCreate is a create that a warm pool may serve, waiting for its batch.
type warmCreate struct {
	ctx      context.Context // the request's: its actor creates the row
	caller   Caller
	template *model.Template
	sb       *model.Sandbox // pending; the batch gives it its member's id and inserts it when it serves it
	env      map[string]string
	done     chan struct{}

	// Set by the batch before done is closed: served, an error, or neither (no member for it: it
	// starts cold on its own).
	served bool // sb is inserted: running, or pending when its member must be resized first
	err    error
}

// idempotencyKey is c's Idempotency-Key, if it has one.
func (c *warmCreate) idempotencyKey() (repositories.IdempotencyKey, bool) {
	if c.sb.IdempotencyKey == nil {
		return repositories.IdempotencyKey{}, false
	}
	return repositories.IdempotencyKey{UserID: c.caller.UserID, Key: *c.sb.IdempotencyKey}, true
}

// warmBatches serves warm creates a batch at a time, like a database's group commit: the creates
// that arrive while one batch is served wait and are served together by the next, in one
// transaction (one lock per owner, one claim per pool, one insert) and one round of runtime
// checks. A warm create is CPU bound end to end on a small host (this service, Postgres and the
// engine share the cores), and a burst served one create per transaction spent most of it on
// statements, not rows. A lone create is a batch of one, as fast as before.
type warmBatches struct {
	serve func(ctx context.Context, batch []*warmCreate)

	mu       sync.Mutex
	queue    []*warmCreate
	draining bool
}

// submit queues c and returns once its batch was served. A create whose context ends while it
// waits leaves the queue; once taken into a batch it waits for the batch (its sandbox may be in it).
func (w *warmBatches) submit(c *warmCreate) error {
	c.done = make(chan struct{})
	w.mu.Lock()
	w.queue = append(w.queue, c)
	if !w.draining {
		w.draining = true
		go w.drain()
	}
	w.mu.Unlock()
	select {
	case <-c.done:
		return nil
	case <-c.ctx.Done():
	}
	w.mu.Lock()
	if i := slices.Index(w.queue, c); i >= 0 {
		w.queue = slices.Delete(w.queue, i, i+1)
		w.mu.Unlock()
		return c.ctx.Err()
	}
	w.mu.Unlock()
	<-c.done
	return nil
}

// drain serves batches until the queue is empty. A batch runs on its first create's values (its
// trace and logs name that request), bounded like any create's runtime work.
func (w *warmBatches) drain() {
	for {
		w.mu.Lock()
		batch := w.next()
		if len(batch) == 0 {
			w.draining = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		ctx, cancel := withRuntimeBudget(batch[0].ctx)
		w.serve(ctx, batch)
		cancel()
	}
}

// next takes the oldest creates, up to maxWarmBatch, leaving queued a second create of one user
// with the same Idempotency-Key: it waits for the first and then replays it.
func (w *warmBatches) next() []*warmCreate {
	var batch []*warmCreate
	keys := map[repositories.IdempotencyKey]bool{}
	rest := w.queue[:0]
	for _, c := range w.queue {
		key, hasKey := c.idempotencyKey()
		if len(batch) == maxWarmBatch || (hasKey && keys[key]) {
			rest = append(rest, c)
			continue
		}
		if hasKey {
			keys[key] = true
		}
		batch = append(batch, c)
	}
	clear(w.queue[len(rest):])
	w.queue = rest
	return batch
}

// warmOutcome is what a batch decided for one create; it is applied only once the transaction
// has committed.
type warmOutcome struct {
	served *model.Sandbox // as inserted
	err    error
}

// serveWarm serves a batch in one transaction: it locks the owners (in id order, as every
// transaction takes locks owner before instance), turns away the creates over their owner's
// quota and those whose Idempotency-Key another create took, claims members, checks with the
// runtime that each still runs, and inserts the sandboxes. A create whose member is ready as it
// is gets inserted running; one whose member must be resized or given a route out is inserted
// pending and finished by its own request (startWarm). Members found dead are removed; their
// creates, and those the pool has no member for, start cold.
func (s *Service) serveWarm(ctx context.Context, batch []*warmCreate) {
	outcomes := make([]warmOutcome, len(batch))
	var dead []repositories.PoolMember
	err := s.rows.InTx(ctx, func(ctx context.Context, rows *repositories.Sandboxes) error {
		clear(outcomes)
		admitted, err := s.admitWarm(ctx, rows, batch, outcomes)
		if err != nil {
			return err
		}
		claimed, err := s.claimMembers(ctx, rows, batch, admitted)
		if err != nil {
			return err
		}
		var served map[int]*model.Sandbox
		served, dead = s.readyMembers(ctx, batch, claimed)
		return s.insertWarm(ctx, rows, batch, served, outcomes)
	})
	switch {
	case errors.Is(err, repositories.ErrConflict):
		// An Idempotency-Key taken between the check and the insert: each create starts on its
		// own, where a replay is found.
		clear(outcomes)
	case err != nil:
		for i := range outcomes {
			outcomes[i] = warmOutcome{err: err}
		}
	}
	for i, c := range batch {
		if outcomes[i].served != nil {
			c.sb, c.served = outcomes[i].served, true
		}
		c.err = outcomes[i].err
		close(c.done)
	}
	if err == nil {
		s.pool.Remove(ctx, dead)
	}
	s.pool.Wake() // refill behind the claims, or try again to fill a pool that had nothing
}

// admitWarm locks each owner and counts their live sandboxes, then admits their creates first
// come, first served, within the quota. It returns the admitted creates' indexes; the others'
// outcomes carry their errors.
func (s *Service) admitWarm(ctx context.Context, rows *repositories.Sandboxes, batch []*warmCreate, outcomes []warmOutcome) ([]int, error) {
	live := map[uuid.UUID]int{}
	var keys []repositories.IdempotencyKey
	for _, c := range batch {
		live[c.caller.UserID] = 0
		if key, ok := c.idempotencyKey(); ok {
			keys = append(keys, key)
		}
	}
	for _, owner := range slices.SortedFunc(maps.Keys(live), func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) }) {
		n, err := rows.LockOwnerCountLive(ctx, owner)
		if errors.Is(err, repositories.ErrNotFound) {
			n = -1
		} else if err != nil {
			return nil, err
		}
		live[owner] = n
	}
	// After the locks: a create that took one of these keys committed before its owner's lock
	// was released, so this statement sees it.
	taken, err := rows.TakenIdempotencyKeys(ctx, keys)
	if err != nil {
		return nil, err
	}
	var admitted []int
	for i, c := range batch {
		key, _ := c.idempotencyKey()
		switch n := live[c.caller.UserID]; {
		case n < 0:
			outcomes[i].err = apierror.AccountDeleted()
		case taken[key]:
			outcomes[i].err = repositories.ErrConflict
		case n >= s.cfg.MaxPerUser:
			outcomes[i].err = quotaExceeded("you already have %d live sandboxes, the maximum", n)
		default:
			// Counted whether or not a member serves it: one that starts cold still takes its place.
			live[c.caller.UserID] = n + 1
			if c.template != nil {
				if err := templates.Hold(ctx, rows, c.template); err != nil {
					if _, ok := apierror.As(err); !ok {
						return nil, err
					}
					live[c.caller.UserID] = n
					outcomes[i].err = err
					continue
				}
			}
			admitted = append(admitted, i)
		}
	}
	return admitted, nil
}

// claimKey groups creates that the same members can serve.
type claimKey struct {
	image  string
	cpu    float64
	memory int64
	disk   int64 // -1: no disk limit
}

// claimMembers claims a member for as many admitted creates as the pools can serve, oldest
// members to the oldest creates; the result maps a create's index to its member.
func (s *Service) claimMembers(ctx context.Context, rows *repositories.Sandboxes, batch []*warmCreate, admitted []int) (map[int]repositories.PoolMember, error) {
	anySize := s.pool.AnySize()
	groups := map[claimKey][]int{}
	for _, i := range admitted {
		sb := batch[i].sb
		key := claimKey{image: sb.Image, disk: -1}
		if sb.DiskMB != nil {
			key.disk = *sb.DiskMB
		}
		if !anySize {
			key.cpu, key.memory = sb.CPU, sb.MemoryMB
		}
		groups[key] = append(groups[key], i)
	}
	claimed := map[int]repositories.PoolMember{}
	for _, key := range slices.SortedFunc(maps.Keys(groups), compareClaimKeys) {
		creates := groups[key]
		first := batch[creates[0]].sb
		members, err := rows.Pool().Claim(ctx, key.image, first.CPU, first.MemoryMB, first.DiskMB, anySize, len(creates))
		if err != nil {
			return nil, err
		}
		for j, m := range members {
			claimed[creates[j]] = m
		}
	}
	return claimed, nil
}

func compareClaimKeys(a, b claimKey) int {
	return cmp.Or(cmp.Compare(a.image, b.image), cmp.Compare(a.cpu, b.cpu), cmp.Compare(a.memory, b.memory), cmp.Compare(a.disk, b.disk))
}

// readyMembers makes each claimed member its create's sandbox and checks with the runtime, all at
// once, that those of the sandbox's size still run (runtimes.Runtime.Claim): those are served
// running. A member to be resized, or to be given a route out, is served pending and finished by
// startWarm after the commit.
// It returns the sandboxes to insert by create, and the members found dead (or that the runtime
// could not vouch for: never handed out), whose creates start cold. The checks run inside the
// transaction, so a batch that then fails leaves a member relabelled on Kubernetes with an owner
// it does not have: those labels decide nothing (ids do), and the next claim relabels it.
func (s *Service) readyMembers(ctx context.Context, batch []*warmCreate, claimed map[int]repositories.PoolMember) (map[int]*model.Sandbox, []repositories.PoolMember) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		served = map[int]*model.Sandbox{}
		dead   []repositories.PoolMember
	)
	now := time.Now()
	for i, m := range claimed {
		sb := *batch[i].sb
		sb.ID, sb.RuntimeID, sb.Start = m.ID, m.RuntimeID, model.StartWarm
		if m.CPU != sb.CPU || m.MemoryMB != sb.MemoryMB || sb.Network.Open() {
			served[i] = &sb
			continue
		}
		wg.Go(func() {
			err := s.rt.Claim(ctx, *m.RuntimeID, runtimes.Claim{CPU: sb.CPU, MemoryMB: sb.MemoryMB, Labels: s.labels(&sb)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Info("a claimed pool member could not be handed out; its sandbox starts cold",
					zap.Stringer("member", m.ID), zap.Error(err))
				dead = append(dead, m)
				return
			}
			sb.Status, sb.StartedAt, sb.ExpiresAt = model.StatusRunning, &now, now.Add(time.Duration(sb.TimeoutSeconds)*time.Second)
			served[i] = &sb
		})
	}
	wg.Wait()
	return served, dead
}

// insertWarm seals the env of each served create (bound to its final id) and inserts them all,
// in the order the creates came.
func (s *Service) insertWarm(ctx context.Context, rows *repositories.Sandboxes, batch []*warmCreate, served map[int]*model.Sandbox, outcomes []warmOutcome) error {
	if len(served) == 0 {
		return nil
	}
	order := slices.Sorted(maps.Keys(served))
	sandboxes := make([]*model.Sandbox, len(order))
	actors := make([]actor.Actor, len(order))
	for j, i := range order {
		if err := s.seal(served[i], batch[i].env); err != nil {
			return err
		}
		sandboxes[j], actors[j] = served[i], actor.From(batch[i].ctx)
	}
	if err := rows.InsertAll(ctx, sandboxes, actors); err != nil {
		return err
	}
	for _, i := range order {
		outcomes[i].served = served[i]
	}
	return nil
}
