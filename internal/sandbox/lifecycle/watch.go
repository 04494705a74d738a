package lifecycle

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/repositories"
)

// ending is why a live sandbox's container ended, as end_reason and exit_code record it.
type ending struct {
	reason   string
	exitCode *int // nil when unknown (a container that vanished)
}

// exited is the ending of a main process that ended with code (-1: unknown), by itself, by the
// out-of-memory killer or by the node's eviction.
func exited(code int, oomKilled, evicted bool) ending {
	e := ending{reason: model.EndProcessExited}
	switch {
	case oomKilled:
		e.reason = model.EndOOMKilled
	case evicted:
		e.reason = model.EndEvicted
	}
	if code >= 0 {
		e.exitCode = &code
	}
	return e
}

// watch makes rows follow the runtime's events, so a sandbox whose main process exits or is
// OOM-killed reads as ending within moments instead of at the next reconciliation. After every
// (re)connection of the event stream it reconciles, since events may have been lost meanwhile.
// Every replica sees every event; the conditional UPDATE lets exactly one act on it.
func (s *Service) watch(ctx context.Context) {
	defer s.loops.Done()
	for ev := range s.rt.Watch(ctx, map[string]string{runtimes.LabelCluster: s.runtimeCfg.Cluster}) {
		switch ev.Kind {
		case runtimes.EventResync:
			if err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reconciling after the runtime's event stream (re)connected", zap.Error(err))
			}
		case runtimes.EventExited, runtimes.EventGone:
			if ev.Labels[runtimes.LabelPool] == "true" {
				s.pool.Wake() // if it was still a member, the pool replaces it now
			}
			id, err := uuid.Parse(ev.Labels[runtimes.LabelSandboxID])
			if err != nil {
				continue
			}
			end := exited(ev.ExitCode, ev.OOMKilled, ev.Evicted)
			if ev.Kind == runtimes.EventGone {
				end = ending{reason: model.EndRuntimeLost}
			}
			if !s.recordEnd(ctx, id, end) {
				continue
			}
			// Removal takes the engine a while; the next event must not wait for it. The loop
			// holds s.loops, so adding to it here cannot race with Stop's Wait.
			s.loops.Add(1)
			go func() {
				defer s.loops.Done()
				s.removeEnded(ctx, id)
			}()
		}
	}
}

// recordEnd moves a running or paused sandbox whose main process ended straight to its final
// state, with why: nothing is left to stop, so it does not pass through stopping, and clients see
// the end as soon as the engine reports it. It reports whether this call made the change (false:
// the sandbox was not live, another replica recorded it, or the UPDATE failed and the reconciler
// retries). The dead container is the caller's to remove; if that fails, the reconciler removes
// it as an orphan since its row is no longer live.
func (s *Service) recordEnd(ctx context.Context, id uuid.UUID, end ending) bool {
	set := map[string]any{"end_reason": end.reason, "ended_at": time.Now()}
	if end.exitCode != nil {
		set["exit_code"] = *end.exitCode
	}
	ended, err := s.rows.Transition(ctx, id, model.Up, model.Final(&end.reason, end.exitCode), set)
	if err != nil {
		if !errors.Is(err, repositories.ErrNotFound) && ctx.Err() == nil {
			s.log.Warn("recording the end of a sandbox", zap.Stringer("sandbox", id), zap.Error(err))
		}
		return false
	}
	fields := []zap.Field{zap.Stringer("sandbox", id), zap.String("status", string(ended.Status)), zap.String("end_reason", end.reason)}
	if end.exitCode != nil {
		fields = append(fields, zap.Int("exit_code", *end.exitCode))
	}
	if end.reason == model.EndRuntimeLost {
		s.log.Warn("sandbox lost its container", fields...)
	} else {
		s.log.Info("sandbox ended by itself", fields...)
	}
	s.changed(ctx, ended)
	return true
}

// removeEnded removes the container of a sandbox recordEnd finished.
func (s *Service) removeEnded(ctx context.Context, id uuid.UUID) {
	s.egress.Detach(id)
	ctx, cancel := context.WithTimeout(ctx, RuntimeBudget)
	defer cancel()
	if err := s.rt.Remove(ctx, model.ContainerName(id)); err != nil && ctx.Err() == nil {
		s.log.Warn("removing an ended sandbox's container; the reconciler retries", zap.Stringer("sandbox", id), zap.Error(err))
	}
}

// inspectEnd asks the runtime how a container ended; false when it is not (or no longer) ended,
// or the runtime did not answer.
func (s *Service) inspectEnd(ctx context.Context, name string) (ending, bool) {
	info, err := s.rt.Inspect(ctx, name)
	switch {
	case errors.Is(err, runtimes.ErrNotFound):
		return ending{reason: model.EndRuntimeLost}, true
	case err != nil:
		s.log.Warn("inspecting a sandbox's container", zap.String("container", name), zap.Error(err))
		return ending{}, false
	case info.State != runtimes.StateExited:
		return ending{}, false
	}
	return exited(info.ExitCode, info.OOMKilled, info.Evicted), true
}

// settle checks whether a live sandbox's container has ended and, if so, records it and removes
// the container before returning: for the callers that are about to tell a client what state
// the sandbox is in. over is true when the container has ended, whoever recorded it.
func (s *Service) settle(ctx context.Context, id uuid.UUID) (end ending, over bool) {
	end, over = s.inspectEnd(ctx, model.ContainerName(id))
	if over && s.recordEnd(ctx, id, end) {
		s.removeEnded(ctx, id)
	}
	return end, over
}

// freezeFailed is the client's answer to a pause (to = paused) or resume (to = running) that the
// runtime refused. A container whose main process ended before the watcher recorded it is
// recorded now and answers 409 sandbox_not_running; other failures say whether to retry. The
// engine's own words (host paths, cgroups) reach the log only.
func (s *Service) freezeFailed(ctx context.Context, sb *model.Sandbox, to model.Status, err error) error {
	op := "resumed"
	if to == model.StatusPaused {
		op = "paused"
	}
	if errors.Is(err, runtimes.ErrNotRunning) || errors.Is(err, runtimes.ErrNotFound) {
		end, over := s.settle(ctx, sb.ID)
		if !over {
			return apierror.Conflict("sandbox_changed", "the sandbox changed state meanwhile; retry").WithCause(err)
		}
		return apierror.Conflict("sandbox_not_running",
			"sandbox %s is no longer running (end_reason %s), so it cannot be %s", sb.ID, end.reason, op).WithCause(err)
	}
	return runtimeFailed(op, sb.ID, err, "its state is unchanged; retry")
}

// runtimeFailed is what a client is told when the runtime fails an operation on a sandbox:
// whether to retry, never the engine's own words; the cause goes to the log.
func runtimeFailed(op string, id uuid.UUID, err error, then string) error {
	if errors.Is(err, runtimes.ErrUnavailable) {
		return apierror.Unavailable("runtime_unavailable",
			"the sandbox runtime is unavailable: sandbox %s could not be %s; %s", id, op, then).WithCause(err)
	}
	return apierror.BadGateway("runtime_failed",
		"the sandbox runtime failed: sandbox %s could not be %s; %s", id, op, then).WithCause(err)
}
