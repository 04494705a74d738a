// Package events serves the event log: what happened to a user's sandboxes and API keys, who
// made it happen and in which request. The database writes each event with its change (see the
// events migration); this package reads them for their owner and deletes them past retention.
package events

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/loop"
	"github.com/insien/orchestrator/internal/platform/page"
	"github.com/insien/orchestrator/repositories"
)

// Types are the events there are; the events migration's triggers write exactly these.
var Types = []string{
	"sandbox.created", "sandbox.running", "sandbox.paused", "sandbox.resumed",
	"sandbox.stopped", "sandbox.expired", "sandbox.failed",
	"api_key.created", "api_key.revoked",
}

const (
	sweepInterval = time.Hour
	sweepBatch    = 5000
)

// Service reads the event log and enforces its retention.
type Service struct {
	rows       *repositories.Events
	deliveries *repositories.Webhooks
	retention  time.Duration
	log        *zap.Logger

	stop context.CancelFunc
	done sync.WaitGroup
}

// Params are the service's dependencies.
type Params struct {
	fx.In
	Events   *repositories.Events
	Webhooks *repositories.Webhooks
	Config   config.Events
	Log      *zap.Logger
}

// NewService builds the service; its retention sweep runs from Start to Stop.
func NewService(p Params) *Service {
	return &Service{rows: p.Events, deliveries: p.Webhooks, retention: p.Config.Retention, log: p.Log.Named("events")}
}

// ListInput is what a caller may ask of the log.
type ListInput struct {
	Type      string
	SandboxID string
	Limit     int // 1 to 100
	Cursor    string
}

// List returns a page of the user's events, newest first, and the cursor of the next page.
func (s *Service) List(ctx context.Context, userID uuid.UUID, in ListInput) ([]repositories.Event, string, error) {
	p, err := page.Parse(in.Limit, in.Cursor)
	if err != nil {
		return nil, "", err
	}
	f := repositories.EventFilter{UserID: userID, Type: in.Type, Limit: p.Fetch(), After: p.After}
	if f.Type != "" && !slices.Contains(Types, f.Type) {
		return nil, "", apierror.Invalid("type", "unknown event type %q; one of %v", f.Type, Types)
	}
	if in.SandboxID != "" {
		id, err := uuid.Parse(in.SandboxID)
		if err != nil {
			return nil, "", apierror.Invalid("sandbox_id", "sandbox_id must be a sandbox's id")
		}
		f.SandboxID = &id
	}
	rows, err := s.rows.List(ctx, f)
	if err != nil {
		return nil, "", fmt.Errorf("listing events: %w", err)
	}
	rows, next := page.Cut(p, rows, func(e repositories.Event) page.Cursor { return page.Cursor{At: e.CreatedAt, ID: e.ID} })
	return rows, next, nil
}

// Sweep deletes the events older than the retention, and the webhook deliveries that ended
// before it (their attempts go with them), and says how many rows went. Replicas may sweep at
// once: each takes rows the others have not locked.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	cutoff := time.Now().Add(-s.retention)
	total := 0
	for _, deleteBefore := range []func(context.Context, time.Time, int) (int, error){s.rows.DeleteBefore, s.deliveries.DeleteFinishedBefore} {
		for {
			n, err := deleteBefore(ctx, cutoff, sweepBatch)
			total += n
			if err != nil {
				return total, err
			}
			if n < sweepBatch {
				break
			}
		}
	}
	return total, nil
}

// Start sweeps at once and then every hour, until Stop.
func (s *Service) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	sweep := func(ctx context.Context) bool {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("could not delete old events; trying again within the hour", zap.Error(err))
		} else if n > 0 {
			s.log.Info("deleted events past retention", zap.Int("events", n), zap.Duration("retention", s.retention))
		}
		return false
	}
	s.done.Go(func() {
		sweep(ctx)
		loop.Every(ctx, sweepInterval, sweep)
	})
	return nil
}

// Stop ends the sweep.
func (s *Service) Stop(context.Context) error {
	if s.stop != nil {
		s.stop()
		s.done.Wait()
	}
	return nil
}
