package docker

import (
	"fmt"
	"maps"
	"math"
	"path"
	"slices"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/shell"
)

// Defaults applied when neither Options nor Spec say otherwise.
const (
	defaultNetworkMode = "bridge"

	// shmSize bounds /dev/shm. It is a tmpfs charged to the sandbox's memory cgroup, but the engine
	// default (64 MiB) is set explicitly so a daemon-wide --default-shm-size cannot raise it.
	shmSize = 64 << 20
)

// defaults are the documented configuration's: a setting that has a configuration key (stop
// grace, tmpfs size, a sandbox's CPU, memory and pids) takes the key's default when Options or
// Spec leave it at zero, so the driver states no default of its own that could disagree with it.
var defaults = config.Default()

// securityOpts are applied to every sandbox. no-new-privileges stops setuid binaries and file
// capabilities from raising privileges after exec; the engine's default seccomp and AppArmor
// profiles stay in force because we never override them. The "key=value" form is used because the
// engine logs a deprecation warning on every create for the older "no-new-privileges:true".
var securityOpts = []string{"no-new-privileges=true"}

// logOpts cap the json-file log so a chatty sandbox cannot fill the engine's disk.
var logOpts = map[string]string{"max-size": "10m", "max-file": "1"}

// containerConfig turns a driver-neutral Spec into the engine's create request, applying every
// hardening choice in one place so a reviewer can audit them together.
func (r *Runtime) containerConfig(spec runtimes.Spec) (*container.Config, *container.HostConfig, error) {
	if spec.Name == "" {
		return nil, nil, fmt.Errorf("docker: spec.Name is required")
	}
	if spec.Image == "" {
		return nil, nil, fmt.Errorf("docker: spec.Image is required")
	}
	if spec.CPU < 0 || math.IsNaN(spec.CPU) || math.IsInf(spec.CPU, 0) || spec.MemoryMB < 0 || spec.PidsLimit < 0 || spec.DiskMB < 0 {
		return nil, nil, fmt.Errorf("docker: negative or invalid resource limits in spec %q", spec.Name)
	}
	if err := enforceable(spec); err != nil {
		return nil, nil, fmt.Errorf("docker: spec %q: %w", spec.Name, err)
	}
	env, err := shell.EnvList(spec.Env)
	if err != nil {
		return nil, nil, fmt.Errorf("docker: spec %q: %w", spec.Name, err)
	}

	workDir := r.opts.WorkDir
	if spec.WorkDir != "" {
		workDir = spec.WorkDir
	}
	if !path.IsAbs(workDir) {
		return nil, nil, fmt.Errorf("docker: spec %q: work dir %q must be absolute", spec.Name, workDir)
	}
	workDir = path.Clean(workDir)

	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[runtimes.LabelManagedBy] = "true"

	memoryMB := spec.MemoryMB
	if memoryMB == 0 {
		memoryMB = defaults.Sandbox.DefaultMemoryMB
	}
	cpu := spec.CPU
	if cpu == 0 {
		cpu = defaults.Sandbox.DefaultCPU
	}
	pids := spec.PidsLimit
	if pids == 0 {
		pids = defaults.Sandbox.PidsLimit
	}
	memory := memoryMB << 20

	stopTimeout := int(math.Ceil(r.opts.StopGrace.Seconds()))

	cfg := &container.Config{
		// The hostname is the sandbox name: no host identity leaks in, and logs from inside are
		// attributable. Hostnames are limited to 63 bytes.
		Hostname:   truncate(spec.Name, 63),
		Image:      spec.Image,
		Env:        env,
		WorkingDir: workDir,
		Labels:     labels,
		// Docker uses this when something other than us (an engine shutdown) stops the sandbox.
		StopTimeout: &stopTimeout,
	}
	if len(spec.Command) > 0 {
		// Command replaces the image's CMD; an image ENTRYPOINT, if any, still wraps it, as with
		// `docker run IMAGE CMD...`.
		cfg.Cmd = slices.Clone(spec.Command)
	}

	networkMode := "none" // no network at all unless the operator opted in
	if r.opts.AllowNetwork {
		networkMode = r.opts.NetworkMode
	}

	useInit := true // an init (tini) as PID 1 reaps zombies and forwards SIGTERM, so Stop is graceful
	hc := &container.HostConfig{
		Privileged:  false, // explicit: a privileged container is the host
		CapDrop:     []string{"ALL"},
		CapAdd:      slices.Clone(runtimes.SandboxCapabilities),
		SecurityOpt: slices.Clone(securityOpts),
		NetworkMode: container.NetworkMode(networkMode),
		Init:        &useInit,
		// The orchestrator decides when a sandbox goes away (it needs exit codes and logs first),
		// and a crashed sandbox must stay down until the orchestrator reacts.
		AutoRemove:    false,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		LogConfig:     container.LogConfig{Type: "json-file", Config: maps.Clone(logOpts)},
		ShmSize:       shmSize,
		// Empty means the engine default (runc); "runsc" puts a user-space kernel in between.
		Runtime:        r.opts.OCIRuntime,
		ReadonlyRootfs: r.opts.ReadOnlyRoot,
		// The disk limit: the engine bounds the container's writable layer (overlay2 on xfs:
		// project quotas, ENOSPC; btrfs: qgroups, EDQUOT, the image's files included).
		StorageOpt: storageOpt(spec.DiskMB),
		Resources: container.Resources{
			Memory: memory,
			// Equal to Memory: no swap, so a sandbox cannot push the host into swapping and the
			// memory limit is the real limit.
			MemorySwap: memory,
			NanoCPUs:   nanoCPUs(cpu),
			// Bounds fork bombs; the limit covers every process and thread in the sandbox.
			PidsLimit: &pids,
		},
	}
	if r.opts.ReadOnlyRoot {
		// With a read-only image, the only writable places are size-limited tmpfs mounts. nosuid
		// and nodev make them useless for privilege tricks; exec stays allowed (Docker's tmpfs
		// default is noexec) because running scripts and installed tools from them is the point.
		// tmpfs pages are charged to the sandbox's memory cgroup, so the size cannot exceed Memory.
		opt := fmt.Sprintf("rw,exec,nosuid,nodev,size=%dm,mode=1777", r.opts.TmpfsSizeMB)
		hc.Tmpfs = map[string]string{"/tmp": opt, workDir: opt}
	}
	for _, m := range spec.Mounts {
		if m.Source == "" || m.Volume != "" { // the driver keeps no volumes of its own (runtimes.VolumeStore)
			return nil, nil, fmt.Errorf("docker: mount of volume %q: only host directories: %w", m.Volume, runtimes.ErrNotSupported)
		}
		// rprivate: nothing mounted later on either side propagates to the other.
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly,
			BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate}})
	}
	return cfg, hc, nil
}

// nanoCPUs is the engine's unit for a CPU limit in cores.
func nanoCPUs(cpu float64) int64 { return int64(math.Round(cpu * 1e9)) }

// maxMemoryMB keeps MemoryMB<<20 (the engine's bytes) from overflowing.
const maxMemoryMB = math.MaxInt64 >> 20

// enforceable refuses limits the engine would not enforce. The engine turns NanoCPUs into a CFS
// quota per 100 ms period; a quota that rounds to zero means no limit at all, and one under the
// kernel's 1 ms minimum fails the start: so any CPU under runtimes.MinCPU is refused here, whatever
// the caller validated. (0 stands for the default, applied after this check.)
func enforceable(spec runtimes.Spec) error {
	if spec.CPU != 0 && nanoCPUs(spec.CPU) < nanoCPUs(runtimes.MinCPU) {
		return fmt.Errorf("cpu %g is under the enforceable minimum %g", spec.CPU, runtimes.MinCPU)
	}
	if spec.MemoryMB != 0 && (spec.MemoryMB < runtimes.MinMemoryMB || spec.MemoryMB > maxMemoryMB) {
		return fmt.Errorf("memory %d MiB is outside %d to %d MiB", spec.MemoryMB, runtimes.MinMemoryMB, int64(maxMemoryMB))
	}
	if spec.DiskMB != 0 && (spec.DiskMB < runtimes.MinDiskMB || spec.DiskMB > maxMemoryMB) {
		return fmt.Errorf("disk %d MiB is outside %d to %d MiB", spec.DiskMB, runtimes.MinDiskMB, int64(maxMemoryMB))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
