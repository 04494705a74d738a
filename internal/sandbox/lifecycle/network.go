package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/sandbox/egress"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/repositories"
)

// SetNetwork replaces the egress policy of a user's live sandbox. New connections follow it at
// once through this replica and within network.policy_refresh through the others; connections
// already open stay open.
func (s *Service) SetNetwork(ctx context.Context, userID, id uuid.UUID, network model.Network) (*model.Sandbox, error) {
	network, err := s.egress.Normalize(network)
	if err != nil {
		return nil, err
	}
	sb, err := s.rows.SetNetwork(ctx, userID, id, network)
	if errors.Is(err, repositories.ErrNotFound) {
		if _, err := s.owned(ctx, userID, id); err != nil {
			return nil, err
		}
		return nil, apierror.Conflict("sandbox_not_running", "sandbox %s has ended", id)
	}
	if err != nil {
		return nil, fmt.Errorf("setting the network policy of sandbox %s: %w", id, err)
	}
	s.changed(ctx, sb)
	if sb.Status.In(model.Up) {
		applyCtx, cancel := withRuntimeBudget(ctx)
		defer cancel()
		if err := s.egress.Apply(applyCtx, sb); err != nil {
			return nil, fmt.Errorf("applying the network policy of sandbox %s: %w", id, err)
		}
	}
	return sb, nil
}

// BlockedEgress returns what a user's sandbox tried to reach and was refused.
func (s *Service) BlockedEgress(ctx context.Context, userID, id uuid.UUID) (egress.Blocked, error) {
	if _, err := s.owned(ctx, userID, id); err != nil {
		return egress.Blocked{}, err
	}
	return s.egress.Blocked(ctx, id)
}
