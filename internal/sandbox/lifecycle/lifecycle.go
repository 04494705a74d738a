package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/cache"
	"github.com/insien/orchestrator/internal/platform/loop"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/repositories"
)

const (
	// stuckAfter is how long a row may sit in pending or stopping before the reconciler assumes
	// the process handling it died and finishes the job: longer than any live create may take.
	stuckAfter = RuntimeBudget + time.Minute
	claimBatch = 20
)

// destroy stops and removes the container of a row this caller moved to stopping, then records
// the final state. If the runtime fails the row stays stopping and the reconciler retries.
func (s *Service) destroy(ctx context.Context, sb *model.Sandbox) error {
	s.egress.Detach(sb.ID)
	name := model.ContainerName(sb.ID)
	if err := s.rt.Stop(ctx, name, s.runtimeCfg.StopGrace); err != nil && !errors.Is(err, runtimes.ErrNotFound) {
		s.log.Warn("stopping sandbox", zap.Stringer("sandbox", sb.ID), zap.Error(err))
	}
	if err := s.rt.Remove(ctx, name); err != nil {
		return fmt.Errorf("removing the container of sandbox %s: %w", sb.ID, err)
	}
	ended, err := s.rows.Transition(ctx, sb.ID, []model.Status{model.StatusStopping}, model.Final(sb.EndReason, sb.ExitCode),
		map[string]any{"ended_at": time.Now()})
	if errors.Is(err, repositories.ErrNotFound) {
		return nil // another replica finished it
	}
	if err != nil {
		return fmt.Errorf("recording the end of sandbox %s: %w", sb.ID, err)
	}
	s.changed(ctx, ended)
	return nil
}

// Start runs the reaper and the reconciler. The first reconciliation happens before Start
// returns when Postgres and the runtime answer, so a restarted replica cleans up after its
// previous life before it serves.
func (s *Service) Start(ctx context.Context) error {
	if s.views != nil {
		if err := s.views.Start(ctx); err != nil {
			return fmt.Errorf("listen for sandbox changes: %w", err)
		}
	}
	if err := s.Reconcile(ctx); err != nil {
		s.log.Warn("initial reconciliation failed; retrying in the background", zap.Error(err))
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	s.stopLoops = cancel
	s.loops.Add(3)
	go s.every(loopCtx, s.cfg.ReapInterval, "reap", s.Reap)
	go s.every(loopCtx, s.cfg.ReconcileInterval, "reconcile", s.Reconcile)
	go s.watch(loopCtx)
	return nil
}

// Stop ends the background loops and waits for them.
func (s *Service) Stop(ctx context.Context) error {
	if s.stopLoops != nil {
		s.stopLoops()
		s.loops.Wait()
	}
	if s.views != nil {
		return s.views.Stop(ctx)
	}
	return nil
}

// every runs work once per interval until ctx ends; a failure is logged and the next run retries.
func (s *Service) every(ctx context.Context, interval time.Duration, name string, work func(context.Context) error) {
	defer s.loops.Done()
	loop.Every(ctx, interval, func(ctx context.Context) bool {
		if err := work(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn(name+" failed", zap.Error(err))
		}
		return false
	})
}

// Reap expires every live sandbox past its expires_at. Claims are atomic, so with several
// replicas each sandbox is reaped by exactly one.
func (s *Service) Reap(ctx context.Context) error {
	for {
		claimed, err := s.rows.ClaimExpired(ctx, claimBatch, s.cfg.PausedExpiry == "keep", s.cfg.MaxLifetime)
		if err != nil {
			return fmt.Errorf("reaping: %w", err)
		}
		if len(claimed) == 0 {
			return nil
		}
		s.destroyAll(ctx, claimed, &s.reaped)
		if len(claimed) < claimBatch {
			return nil
		}
	}
}

func (s *Service) destroyAll(ctx context.Context, rows []model.Sandbox, counter interface{ Add(int64) int64 }) {
	var wg sync.WaitGroup
	for i := range rows {
		wg.Add(1)
		go func(sb *model.Sandbox) {
			defer wg.Done()
			s.changed(ctx, sb)
			ctx, cancel := context.WithTimeout(ctx, RuntimeBudget) // one hung engine call must not stall the loop
			defer cancel()
			if err := s.destroy(ctx, sb); err != nil {
				s.log.Warn("destroying sandbox", zap.Stringer("sandbox", sb.ID), zap.Error(err))
				return
			}
			if counter != nil {
				counter.Add(1)
			}
		}(&rows[i])
	}
	wg.Wait()
}

// Reconcile makes the runtime and the database agree: rows stuck mid-transition by a dead
// process are finished, containers without a live row are removed, and live rows whose container
// is gone (or whose main process exited) end failed.
func (s *Service) Reconcile(ctx context.Context) error {
	stuck, err := s.rows.ClaimStuck(ctx, s.instance, s.started, time.Now().Add(-stuckAfter), claimBatch)
	if err != nil {
		return fmt.Errorf("reconciling: %w", err)
	}
	s.destroyAll(ctx, stuck, nil)

	listedAt := time.Now()
	containers, err := s.rt.List(ctx, map[string]string{runtimes.LabelCluster: s.runtimeCfg.Cluster})
	if err != nil {
		return fmt.Errorf("reconciling: listing the runtime's containers: %w", err)
	}
	// Members before sandboxes: a claim moves a member into sandboxes (never back), so a
	// container claimed between the two reads is seen in one of them.
	members, err := s.rows.Pool().Members(ctx)
	if err != nil {
		return fmt.Errorf("reconciling: %w", err)
	}
	pooled := map[uuid.UUID]bool{}
	for _, m := range members {
		pooled[m.ID] = true
	}
	live, err := s.rows.Live(ctx)
	if err != nil {
		return fmt.Errorf("reconciling: %w", err)
	}
	seen := map[uuid.UUID]runtimes.Info{}
	for _, c := range containers {
		id, err := uuid.Parse(c.Labels[runtimes.LabelSandboxID])
		if err != nil {
			continue
		}
		seen[id] = c
		if _, ok := live[id]; ok || pooled[id] {
			continue // a pool member's health is the pool's business
		}
		// A container is created only after its row (or pool member) is inserted, so one without
		// either is an orphan (its row ended, or a process died between the two steps).
		if err := s.rt.Remove(ctx, c.Name); err != nil {
			s.log.Warn("removing orphaned container", zap.String("container", c.Name), zap.Error(err))
		} else {
			s.log.Info("removed orphaned container", zap.String("container", c.Name))
		}
	}
	for id, sb := range live {
		if !sb.Status.In(model.Up) {
			continue
		}
		if sb.StartedAt == nil || !sb.StartedAt.Before(listedAt) {
			continue // started after the listing: its container may simply not be in it
		}
		c, ok := seen[id]
		if ok && c.State != runtimes.StateExited {
			continue
		}
		var end ending
		if !ok {
			end = ending{reason: model.EndRuntimeLost}
		} else if end, ok = s.inspectEnd(ctx, c.Name); !ok {
			continue // running again, or the runtime did not answer: the next pass decides
		}
		if s.recordEnd(ctx, id, end) {
			s.removeEnded(ctx, id)
		}
	}
	var up []model.Sandbox
	for _, sb := range live {
		if sb.Status.In(model.Up) {
			up = append(up, sb)
		}
	}
	s.egress.Sync(ctx, up)
	return nil
}

func cacheKey(id uuid.UUID) string { return "sandbox:" + id.String() }

// read returns the entry's copy when it is the user's sandbox, else the row from Postgres, which
// it caches (env excluded: secrets stay in Postgres only) unless the sandbox changed since the
// entry was read.
func (s *Service) read(ctx context.Context, userID, id uuid.UUID, entry *cache.Entry[model.Sandbox]) (*model.Sandbox, error) {
	if sb, ok := entry.Value(); ok && sb.UserID == userID {
		return &sb, nil
	}
	sb, err := s.owned(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	copied := *sb
	copied.EnvEncrypted = nil
	if err := entry.Fill(ctx, s.rdb, copied, s.cfg.CacheTTL); err != nil {
		s.log.Debug("caching sandbox", zap.Error(err))
	}
	return sb, nil
}

// changed invalidates the Redis copy after every write, on every replica, and evicts the views
// held in memory here at once and on the other replicas within moments (changedChannel). If
// Redis is down the copy (if any) is gone with it, or expires within cache_ttl, and the other
// replicas' views within view_local_ttl; the failure is only logged.
func (s *Service) changed(ctx context.Context, sb *model.Sandbox) {
	if err := cache.Invalidate(ctx, s.rdb, cacheKey(sb.ID), cache.InvalidationWindow); err != nil {
		s.log.Debug("invalidating sandbox cache", zap.Error(err))
	}
	s.evictView(ctx, sb)
}

// evictView drops sb's view here and, through changedChannel, on every replica.
func (s *Service) evictView(ctx context.Context, sb *model.Sandbox) {
	if s.views == nil {
		return
	}
	if err := s.views.Evict(ctx, viewKey(sb.UserID, sb.ID)); err != nil {
		s.log.Debug("announcing a sandbox change", zap.Error(err))
	}
}

// view is what GET /api/sandboxes/{id} shows: the sandbox (without its sealed env) and Live.
type view struct {
	sandbox model.Sandbox
	live    Live
}

const (
	// changedChannel carries the view key of every changed sandbox to every replica.
	changedChannel = "sandboxes:changed"
	// viewCacheSize bounds the views a replica holds (a view is about a kilobyte).
	viewCacheSize = 10_000
)

func viewKey(userID, id uuid.UUID) string { return userID.String() + "/" + id.String() }
