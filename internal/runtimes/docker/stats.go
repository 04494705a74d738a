package docker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Stats takes one sample of resource use; see runtimes.Interactive for the contract.
func (r *Runtime) Stats(ctx context.Context, id string) (runtimes.Stats, error) {
	info, err := r.Inspect(ctx, id)
	if err != nil {
		return runtimes.Stats{}, err
	}
	if info.State != runtimes.StateRunning && info.State != runtimes.StatePaused {
		// The engine answers with an all-zero sample for a stopped container.
		return runtimes.Stats{}, fmt.Errorf("docker: stats %s: %w", shortID(id), r.whyNotRunning(ctx, id))
	}
	// Stream false without one-shot: the engine reads twice, a second apart, and fills precpu_stats
	// from the first reading, which the CPU percentage needs.
	res, err := r.cli.ContainerStats(ctx, id, client.ContainerStatsOptions{Stream: false, IncludePreviousSample: true})
	if err != nil {
		return runtimes.Stats{}, mapErr("stats", id, err)
	}
	defer res.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		return runtimes.Stats{}, fmt.Errorf("docker: stats %s: decoding: %w", shortID(id), err)
	}
	return runtimes.Stats{
		CPUPercent:       cpuPercent(s.PreCPUStats, s.CPUStats),
		MemoryBytes:      memoryInUse(s.MemoryStats),
		MemoryLimitBytes: s.MemoryStats.Limit,
		Pids:             s.PidsStats.Current,
		At:               s.Read,
	}, nil
}

// cpuPercent is the docker CLI's formula: the container's share of the host's CPU time between the
// two readings, scaled to the number of CPUs, so 100 is one full core.
func cpuPercent(prev, cur container.CPUStats) float64 {
	cpuDelta := float64(cur.CPUUsage.TotalUsage) - float64(prev.CPUUsage.TotalUsage)
	systemDelta := float64(cur.SystemUsage) - float64(prev.SystemUsage)
	cpus := float64(cur.OnlineCPUs)
	if cpus == 0 {
		cpus = float64(len(cur.CPUUsage.PercpuUsage))
	}
	if cpuDelta <= 0 || systemDelta <= 0 {
		return 0
	}
	return cpuDelta / systemDelta * cpus * 100
}

// memoryInUse is the docker CLI's figure: usage minus the inactive page cache, which the kernel
// reclaims before it would OOM-kill anything (cgroup v1 and v2 name it differently).
func memoryInUse(m container.MemoryStats) uint64 {
	if v, ok := m.Stats["total_inactive_file"]; ok && v < m.Usage {
		return m.Usage - v
	}
	if v := m.Stats["inactive_file"]; v < m.Usage {
		return m.Usage - v
	}
	return m.Usage
}
