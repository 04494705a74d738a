package pool

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/repositories"
)

// count is how many members of one image are ready and starting.
type count struct{ ready, starting int }

// countByImage counts the members of every image, through rows (the pool's own, or a transaction).
func countByImage(ctx context.Context, rows *repositories.Sandboxes) (map[string]count, error) {
	members, err := rows.Pool().Members(ctx)
	if err != nil {
		return nil, err
	}
	return countMembers(members), nil
}

func countMembers(members []repositories.PoolMember) map[string]count {
	out := map[string]count{}
	for _, m := range members {
		c := out[m.Image]
		if m.Status == repositories.MemberReady {
			c.ready++
		} else {
			c.starting++
		}
		out[m.Image] = c
	}
	return out
}

// ImageStatus is the state of one image's pool.
type ImageStatus struct {
	Image    string `json:"image"`
	Target   int    `json:"target"`
	Ready    int    `json:"ready"`
	Starting int    `json:"starting"` // in flight: being created or started
	// LastError is why the pool last failed to fill, until it fills again.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// Status reports every pool the configuration names or that still has members, from Postgres: it
// needs no running service, so `orchestrator pool status` reads it directly.
func Status(ctx context.Context, rows *repositories.Sandboxes, cfg config.Sandbox) ([]ImageStatus, error) {
	targets, err := cfg.Targets()
	if err != nil {
		return nil, err
	}
	members, err := rows.Pool().Members(ctx)
	if err != nil {
		return nil, err
	}
	failures, err := rows.Pool().Failures(ctx)
	if err != nil {
		return nil, err
	}
	counts := countMembers(members)
	images := map[string]bool{}
	for image := range targets {
		images[image] = true
	}
	for image := range counts {
		images[image] = true
	}
	out := []ImageStatus{}
	for _, image := range slices.Sorted(maps.Keys(images)) {
		s := ImageStatus{Image: image, Target: targets[image], Ready: counts[image].ready, Starting: counts[image].starting}
		if f, ok := failures[image]; ok {
			s.LastError, s.LastErrorAt = f.Message, &f.FailedAt
		}
		out = append(out, s)
	}
	return out, nil
}
