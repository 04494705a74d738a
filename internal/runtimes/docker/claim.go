package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Claim checks that a pool member still runs and gives it the claim's limits. The engine changes
// a running container's cgroup in place (docker update), so any size can be claimed; a member
// already of that size costs one inspect. Labels stay: the engine cannot change them.
func (r *Runtime) Claim(ctx context.Context, id string, c runtimes.Claim) error {
	ctr, err := r.inspectRunning(ctx, "claim", id)
	if err != nil {
		return err
	}
	want := ctr.HostConfig.Resources
	changed := false
	if c.CPU > 0 && nanoCPUs(c.CPU) != want.NanoCPUs {
		want.NanoCPUs, changed = nanoCPUs(c.CPU), true
	}
	if c.MemoryMB > 0 && c.MemoryMB<<20 != want.Memory {
		want.Memory, want.MemorySwap, changed = c.MemoryMB<<20, c.MemoryMB<<20, true
	}
	if !changed {
		return nil
	}
	// Only the limits a claim sets: the update replaces every field it is given.
	update := container.Resources{NanoCPUs: want.NanoCPUs, Memory: want.Memory, MemorySwap: want.MemorySwap}
	_, err = r.cli.ContainerUpdate(ctx, id, client.ContainerUpdateOptions{Resources: &update})
	if cerrdefs.IsInvalidArgument(err) {
		// e.g. more CPUs than the host has, or memory below what the member already uses.
		return fmt.Errorf("docker: claim %s: %w: %w", shortID(id), runtimes.ErrSpecRefused, err)
	}
	return mapErr("claim: update", id, err)
}
