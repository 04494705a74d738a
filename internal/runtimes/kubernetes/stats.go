package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
)

// A sandbox's resource use is read from its own cgroup, inside it, by a helper script: the one
// source that gives a one-second CPU figure everywhere. The kubelet's summary
// (nodes/{node}/proxy/stats/summary) comes from cAdvisor's cache, refreshed every 10–15 s, so two
// readings a second apart usually show no CPU at all, and reaching it needs nodes/proxy, which
// also opens exec on every Pod of the node; metrics.k8s.io averages over its scrape window (15 s
// or more) and is only there with metrics-server. The container's cgroup is what `docker stats`
// reads too: runc mounts it as /sys/fs/cgroup (cgroup v1: one directory per controller; v2: the
// container's own cgroup namespace).
//
// statsScript prints the cgroup version, then two lines "CPU_NS UPTIME" a second apart (CPU time
// used by the container, and /proc/uptime as the wall clock), then memory in use, the inactive
// file cache in it, the memory limit, the host's memory and the number of tasks. It uses sh
// builtins but for sleep, so that it adds one process to what it counts.
const statsScript = `cg=/sys/fs/cgroup
if [ -f $cg/cgroup.controllers ]; then
	v=2 mem=$cg pids=$cg/pids.current
	cpu() { read -r _ u < $cg/cpu.stat && echo "${u}000"; }
	inactive=inactive_file limit=$cg/memory.max usage=$cg/memory.current
else
	v=1 mem=$cg/memory pids=$cg/pids/pids.current
	cpu() { read -r u < $cg/cpuacct/cpuacct.usage && echo "$u"; }
	inactive=total_inactive_file limit=$mem/memory.limit_in_bytes usage=$mem/memory.usage_in_bytes
fi
echo "$v"
c=$(cpu) || exit 1; read -r up _ < /proc/uptime; echo "$c $up"
sleep 1
c=$(cpu) || exit 1; read -r up _ < /proc/uptime; echo "$c $up"
read -r u < "$usage" || exit 1; echo "$u"
i=0; while read -r k n; do [ "$k" = "$inactive" ] && i=$n; done < $mem/memory.stat; echo "$i"
read -r l < "$limit" || exit 1; echo "$l"
read -r _ t _ < /proc/meminfo; echo "$((t * 1024))"
read -r p < "$pids" || exit 1; echo "$p"`

// maxStatsOutput bounds what the script may print.
const maxStatsOutput = 1 << 10

// Stats takes one sample of resource use; see runtimes.Interactive for the contract. A Pod that
// is not running refuses the exec: ErrNotRunning (Kubernetes cannot pause one).
func (r *Runtime) Stats(ctx context.Context, id string) (runtimes.Stats, error) {
	if id == "" {
		return runtimes.Stats{}, fmt.Errorf("kubernetes: stats: empty id: %w", runtimes.ErrNotFound)
	}
	out, err := r.runShort(ctx, "stats", id, statsScript, maxStatsOutput)
	if err != nil {
		return runtimes.Stats{}, err
	}
	s, err := parseStats(out, time.Now())
	if err != nil {
		return runtimes.Stats{}, fmt.Errorf("kubernetes: stats %s: %w", id, err)
	}
	return s, nil
}

// parseStats turns statsScript's output into a sample taken at `at`. The figures are those of
// docker/stats.go: CPU as a share of one core over the interval (150 = one and a half cores),
// memory in use without the inactive file cache, an unlimited memory limit as the host's memory,
// and the tasks of the sandbox but the script's own shell.
func parseStats(out string, at time.Time) (runtimes.Stats, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 8 || (lines[0] != "1" && lines[0] != "2") {
		return runtimes.Stats{}, fmt.Errorf("unexpected stats output %q", out)
	}
	num := func(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }
	cpu0, up0, err0 := parseCPULine(lines[1])
	cpu1, up1, err1 := parseCPULine(lines[2])
	usage, err2 := num(lines[3])
	inactive, err3 := num(lines[4])
	host, err4 := num(lines[6])
	limit, err5 := parseLimit(lines[5], host)
	pids, err6 := num(lines[7])
	if err := errors.Join(err0, err1, err2, err3, err4, err5, err6); err != nil {
		return runtimes.Stats{}, fmt.Errorf("unexpected stats output %q: %w", out, err)
	}
	s := runtimes.Stats{MemoryBytes: usage, MemoryLimitBytes: limit, At: at}
	if inactive < usage {
		s.MemoryBytes = usage - inactive
	}
	if pids > 0 {
		s.Pids = pids - 1
	}
	if wall := up1 - up0; wall > 0 && cpu1 > cpu0 {
		s.CPUPercent = float64(cpu1-cpu0) / float64(wall) * 100
	}
	return s, nil
}

// parseCPULine reads "CPU_NS UPTIME_SECONDS" into nanoseconds.
func parseCPULine(line string) (cpu, uptime uint64, err error) {
	c, up, ok := strings.Cut(line, " ")
	if !ok {
		return 0, 0, fmt.Errorf("bad cpu line %q", line)
	}
	cpu, err = strconv.ParseUint(c, 10, 64)
	if err != nil {
		return 0, 0, err
	}
	secs, err := strconv.ParseFloat(up, 64)
	if err != nil || secs < 0 {
		return 0, 0, fmt.Errorf("bad uptime %q", up)
	}
	return cpu, uint64(secs * 1e9), nil
}

// parseLimit reads a memory limit: cgroup v2 writes "max" for none, v1 a number near 2^63 (a page
// multiple of the largest int64). No limit is reported as the host's memory, as Docker does.
func parseLimit(s string, host uint64) (uint64, error) {
	if s == "max" {
		return host, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if n >= 1<<62 {
		return host, nil
	}
	return n, nil
}
