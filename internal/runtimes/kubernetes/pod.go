package kubernetes

import (
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
)

// sandboxContainer is the one container of a sandbox Pod, where its main process runs and where
// exec, files, logs and terminals go.
const sandboxContainer = "sandbox"

// noNameserver is the resolver of a Pod without network: the API server requires one nameserver
// with dnsPolicy None, and the Pod's own loopback, where nothing listens, answers every lookup
// with a refusal at once, so no name ever resolves (and no query leaves the Pod).
const noNameserver = "127.0.0.1"

// startGate holds a created Pod back from the scheduler until Start removes it, so that Create
// makes a sandbox without running it, as on Docker (a retried create, quotas and the NetworkPolicy
// all apply before anything runs).
const startGate = "dev.insien.orchestrator/start"

// Volumes that replace the writable image filesystem when Options.ReadOnlyRoot.
const (
	tmpVolume     = "tmp"
	workDirVolume = "workdir"
)

// defaults are the documented configuration's (as in the Docker driver): a setting with a
// configuration key takes the key's default when Options or Spec leave it at zero.
var defaults = config.Default()

// runtimeDefaultSeccomp is the container runtime's default seccomp profile, which Kubernetes
// (unlike Docker) leaves off unless asked.
var runtimeDefaultSeccomp = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}

// podFor turns a driver-neutral Spec into the Pod to create, applying every hardening choice in
// one place so that a reviewer can audit them together.
//
// What Kubernetes cannot express per Pod: a pids limit (Spec.PidsLimit). The kubelet bounds the
// processes of every Pod on its node with its podPidsLimit setting only; an operator who runs
// untrusted code must set it (to sandbox.pids_limit) in the kubelet configuration.
func (r *Runtime) podFor(spec runtimes.Spec) (*corev1.Pod, error) {
	if err := validSpec(spec); err != nil {
		return nil, fmt.Errorf("kubernetes: spec %q: %w", spec.Name, err)
	}
	labels, err := r.podLabels(spec.Labels)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: spec %q: %w", spec.Name, err)
	}
	workDir := r.opts.WorkDir
	if spec.WorkDir != "" {
		workDir = spec.WorkDir
	}
	if !path.IsAbs(workDir) {
		return nil, fmt.Errorf("kubernetes: spec %q: work dir %q must be absolute", spec.Name, workDir)
	}
	workDir = path.Clean(workDir)

	c := corev1.Container{
		Name:  sandboxContainer,
		Image: spec.Image,
		// Args replaces the image's CMD and keeps its ENTRYPOINT, as `docker run IMAGE CMD...`
		// and the Docker driver do.
		Args:            slices.Clone(spec.Command),
		Env:             envVars(spec.Env),
		WorkingDir:      workDir,
		ImagePullPolicy: r.opts.ImagePullPolicy,
		Resources:       resources(spec),
		SecurityContext: &corev1.SecurityContext{
			Privileged: ptr.To(false), // explicit: a privileged container is the node
			// no_new_privs: setuid binaries and file capabilities cannot raise privileges.
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: capabilities(runtimes.SandboxCapabilities)},
			SeccompProfile:           runtimeDefaultSeccomp,
			ReadOnlyRootFilesystem:   ptr.To(r.opts.ReadOnlyRoot),
			// No RunAsUser or RunAsNonRoot: a sandbox runs as its image's user, as on Docker (the
			// images are root shells that install packages). Only the image knows whether it may
			// run as non-root, and the API server cannot read it; the capability set is the bound.
		},
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Namespace: r.opts.Namespace, Labels: labels},
		Spec: corev1.PodSpec{
			Containers:      []corev1.Container{c},
			SchedulingGates: []corev1.PodSchedulingGate{{Name: startGate}},
			// The orchestrator decides when a sandbox goes away (it wants its exit status first),
			// and a crashed sandbox must stay down until it reacts.
			RestartPolicy: corev1.RestartPolicyNever,
			// Sandboxes have no business with the Kubernetes API or the namespace's Services.
			AutomountServiceAccountToken: ptr.To(false),
			EnableServiceLinks:           ptr.To(false),
			// The Pod's pause process becomes PID 1, as Docker's init is: it reaps orphans, and the
			// main process, no longer PID 1, dies of SIGTERM by default, so Stop is graceful. When
			// the main process exits the runtime kills the rest of the container, as Docker does.
			ShareProcessNamespace: ptr.To(true),
			HostNetwork:           false,
			HostPID:               false,
			HostIPC:               false,
			// The hostname is the sandbox name: no node identity leaks in.
			Hostname:                      spec.Name,
			TerminationGracePeriodSeconds: ptr.To(seconds(r.opts.StopGrace)),
			RuntimeClassName:              optional(r.opts.RuntimeClass),
			NodeSelector:                  maps.Clone(r.opts.NodeSelector),
			Tolerations:                   slices.Clone(r.opts.Tolerations),
			SecurityContext:               &corev1.PodSecurityContext{SeccompProfile: runtimeDefaultSeccomp},
		},
	}
	if r.opts.MaxLifetime > 0 {
		p.Spec.ActiveDeadlineSeconds = ptr.To(seconds(r.opts.MaxLifetime))
	}
	if !r.opts.AllowNetwork {
		// No network means no DNS either: the NetworkPolicy blocks traffic where the cluster
		// enforces it, and no resolver is configured anyway.
		p.Spec.DNSPolicy = corev1.DNSNone
		p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{noNameserver}}
	}
	if r.opts.ReadOnlyRoot {
		// With a read-only image, the only writable places are size-limited memory-backed
		// emptyDirs, charged to the sandbox's memory limit like Docker's tmpfs mounts.
		size := resource.NewQuantity(r.opts.TmpfsSizeMB<<20, resource.BinarySI)
		writable := map[string]string{"/tmp": tmpVolume, workDir: workDirVolume} // one volume when WorkDir is /tmp
		for _, at := range slices.Sorted(maps.Keys(writable)) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: writable[at], VolumeSource: corev1.VolumeSource{
				EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: size},
			}})
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: writable[at], MountPath: at})
		}
	}
	if err := addVolumes(p, spec.Mounts); err != nil {
		return nil, fmt.Errorf("kubernetes: spec %q: %w", spec.Name, err)
	}
	return p, nil
}

// validSpec refuses what the API server would refuse less clearly, and limits Kubernetes would
// not enforce (a CPU that rounds to under the enforceable minimum).
func validSpec(spec runtimes.Spec) error {
	switch {
	case spec.Image == "":
		return fmt.Errorf("an image is required")
	case len(content.IsDNS1123Label(spec.Name)) > 0:
		// A label rather than the subdomain a Pod name may be, so that it is the hostname too.
		return fmt.Errorf("name %q is not a DNS label (lower case letters, digits and '-', at most 63)", spec.Name)
	case spec.CPU < 0 || math.IsNaN(spec.CPU) || math.IsInf(spec.CPU, 0) || spec.MemoryMB < 0 || spec.PidsLimit < 0 || spec.DiskMB < 0:
		return fmt.Errorf("negative or invalid resource limits")
	case spec.CPU != 0 && spec.CPU < runtimes.MinCPU:
		return fmt.Errorf("cpu %g is under the enforceable minimum %g", spec.CPU, runtimes.MinCPU)
	case spec.MemoryMB != 0 && (spec.MemoryMB < runtimes.MinMemoryMB || spec.MemoryMB > maxMemoryMB):
		return fmt.Errorf("memory %d MiB is outside %d to %d MiB", spec.MemoryMB, runtimes.MinMemoryMB, int64(maxMemoryMB))
	case spec.DiskMB != 0 && (spec.DiskMB < runtimes.MinDiskMB || spec.DiskMB > maxMemoryMB):
		return fmt.Errorf("disk %d MiB is outside %d to %d MiB", spec.DiskMB, runtimes.MinDiskMB, int64(maxMemoryMB))
	}
	for k := range spec.Env {
		// The API server takes any printable name but "="; NUL cannot reach a process.
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(spec.Env[k], 0) {
			return fmt.Errorf("invalid environment variable %q", k)
		}
	}
	return nil
}

// podLabels are the Spec's labels plus LabelManagedBy, which the NetworkPolicy selects on, and
// LabelCluster (this driver's when the Spec has none), which an egress policy selects on.
func (r *Runtime) podLabels(in map[string]string) (map[string]string, error) {
	labels := maps.Clone(in)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[runtimes.LabelManagedBy] = "true"
	if labels[runtimes.LabelCluster] == "" {
		labels[runtimes.LabelCluster] = r.opts.Cluster
	}
	for k, v := range labels {
		if errs := append(content.IsLabelKey(k), content.IsLabelValue(v)...); len(errs) > 0 {
			return nil, fmt.Errorf("label %s=%q cannot be a Kubernetes label: %s", k, v, strings.Join(errs, "; "))
		}
	}
	return labels, nil
}

// resources are the Pod's requests and limits, equal so that the Pod is in the Guaranteed QoS
// class: the scheduler reserves exactly what the sandbox may use, and nothing is overcommitted.
// The disk limit is the ephemeral-storage limit (the writable layer, logs and disk emptyDirs):
// the kubelet evicts a Pod past it; its request makes the scheduler place it where that much is.
func resources(spec runtimes.Spec) corev1.ResourceRequirements {
	cpu := spec.CPU
	if cpu == 0 {
		cpu = defaults.Sandbox.DefaultCPU
	}
	memoryMB := spec.MemoryMB
	if memoryMB == 0 {
		memoryMB = defaults.Sandbox.DefaultMemoryMB
	}
	diskMB := spec.DiskMB
	if diskMB == 0 {
		diskMB = defaults.Sandbox.DefaultDiskMB
	}
	list := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewMilliQuantity(milliCPU(cpu), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(memoryMB<<20, resource.BinarySI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(diskMB<<20, resource.BinarySI),
	}
	return corev1.ResourceRequirements{Requests: list, Limits: list.DeepCopy()}
}

// milliCPU is Kubernetes' unit for a CPU limit in cores; runtimes.CPUStep is a millicore.
func milliCPU(cpu float64) int64 { return int64(math.Round(cpu * 1000)) }

// maxMemoryMB keeps MemoryMB<<20 (bytes) from overflowing.
const maxMemoryMB = math.MaxInt64 >> 20

// envVars renders Env in a stable order. Values are never logged or put in errors.
func envVars(env map[string]string) []corev1.EnvVar {
	keys := slices.Collect(maps.Keys(env))
	sort.Strings(keys)
	out := make([]corev1.EnvVar, 0, len(keys))
	for _, k := range keys {
		out = append(out, corev1.EnvVar{Name: k, Value: env[k]})
	}
	return out
}

// seconds rounds d up to whole seconds, the unit of the Pod's durations.
func seconds(d time.Duration) int64 { return int64(math.Ceil(d.Seconds())) }

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// capabilities converts names to the API's type (a fresh slice: the Pod may be changed).
func capabilities(names []string) []corev1.Capability {
	out := make([]corev1.Capability, len(names))
	for i, n := range names {
		out[i] = corev1.Capability(n)
	}
	return out
}
