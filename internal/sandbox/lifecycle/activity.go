package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/sandbox/liveconns"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/repositories"
)

// Running returns a user's sandbox if it can run commands now: 404 when it is not theirs,
// 409 naming its state when it is not running.
func (s *Service) Running(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error) {
	sb, err := s.Get(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if sb.Status != model.StatusRunning {
		return nil, apierror.Conflict("sandbox_not_running", "sandbox is %s; it must be running", sb.Status)
	}
	return sb, nil
}

// Touch records activity: with auto_extend, expires_at moves to now + the sandbox's timeout
// (bounded by max lifetime). Writes are skipped while the stored expiry is still close to that,
// so a busy sandbox costs at most a few UPDATEs a minute.
func (s *Service) Touch(ctx context.Context, sb *model.Sandbox) {
	if !sb.AutoExtend {
		return
	}
	timeout := time.Duration(sb.TimeoutSeconds) * time.Second
	target := s.withinLifetime(sb, time.Now().Add(timeout))
	if target.Sub(sb.ExpiresAt) < min(timeout/10, 10*time.Second) {
		return
	}
	updated, err := s.rows.Touch(ctx, sb.ID, target)
	if err != nil {
		if !errors.Is(err, repositories.ErrNotFound) {
			s.log.Debug("extending on activity", zap.Stringer("sandbox", sb.ID), zap.Error(err))
		}
		return
	}
	*sb = *updated
	s.changed(ctx, updated)
}

// Connect registers a live connection (exec, terminal, followed logs) to a sandbox; while it is
// open it counts in active_connections and keeps the sandbox alive. Call the returned function
// when the connection ends. A sandbox already holding sandbox.max_connections gets 429: each
// connection costs the server buffers and an engine stream. Counting and registering are one
// Redis step, so the limit holds under concurrent requests on every replica.
func (s *Service) Connect(ctx context.Context, sb *model.Sandbox) (release func(), err error) {
	current := *sb
	unregister, err := s.conns.Acquire(ctx, sb.ID, s.cfg.MaxConnections, func(ctx context.Context) { s.Touch(ctx, &current) })
	var full *liveconns.FullError
	if errors.As(err, &full) {
		return nil, apierror.TooManyRequests("too_many_connections",
			"sandbox has %d live execs, terminals or log streams, the maximum; retry when one ends", full.Held)
	}
	if err != nil {
		return nil, fmt.Errorf("registering a connection to sandbox %s: %w", sb.ID, err)
	}
	// active_connections is part of the sandbox's view: it changes now and when this one ends.
	s.evictView(ctx, sb)
	return func() {
		unregister()
		s.evictView(context.Background(), sb)
	}, nil
}

// Pause freezes every process of a running sandbox; pausing a paused sandbox succeeds.
func (s *Service) Pause(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error) {
	return s.freeze(ctx, userID, id, model.StatusRunning, model.StatusPaused, s.rt.Pause,
		func(now time.Time, sb *model.Sandbox) map[string]any { return map[string]any{"paused_at": now} })
}

// Resume thaws a paused sandbox; resuming a running sandbox succeeds. With paused_expiry
// "freeze" the time spent paused is added to expires_at (bounded by max lifetime).
func (s *Service) Resume(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error) {
	return s.freeze(ctx, userID, id, model.StatusPaused, model.StatusRunning, s.rt.Resume,
		func(now time.Time, sb *model.Sandbox) map[string]any {
			set := map[string]any{"paused_at": nil}
			if s.cfg.PausedExpiry == "freeze" && sb.PausedAt != nil {
				set["expires_at"] = s.withinLifetime(sb, sb.ExpiresAt.Add(now.Sub(*sb.PausedAt)))
			}
			return set
		})
}

func (s *Service) freeze(ctx context.Context, userID, id uuid.UUID, from, to model.Status,
	act func(context.Context, string) error, set func(time.Time, *model.Sandbox) map[string]any) (*model.Sandbox, error) {
	sb, err := s.owned(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if !s.rt.Capabilities().Pause {
		return nil, apierror.Conflict("not_supported_by_runtime",
			"the %s runtime cannot pause or resume a sandbox (GET /api/runtime lists what it can do)", s.rt.Name())
	}
	if sb.Status == to {
		return sb, nil
	}
	if sb.Status != from {
		return nil, apierror.Conflict("sandbox_not_"+string(from), "sandbox is %s; it must be %s", sb.Status, from)
	}
	// The container and the row change together even if the client leaves in between.
	ctx, cancel := withRuntimeBudget(ctx)
	defer cancel()
	if err := act(ctx, model.ContainerName(id)); err != nil {
		return nil, s.freezeFailed(ctx, sb, to, err)
	}
	updated, err := s.rows.Transition(ctx, id, []model.Status{from}, to, set(time.Now(), sb))
	if errors.Is(err, repositories.ErrNotFound) {
		return nil, apierror.Conflict("sandbox_changed", "the sandbox changed state meanwhile; retry")
	}
	if err != nil {
		return nil, fmt.Errorf("recording sandbox %s as %s: %w", id, to, err)
	}
	s.changed(ctx, updated)
	return updated, nil
}
