// Package runtimes defines the sandbox runtime contract that the orchestration code depends on.
// It is free of Docker (or Kubernetes) types so that any driver can implement it.
package runtimes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Labels every driver attaches to a sandbox so that reconciliation can find its own workloads.
const (
	LabelManagedBy = "dev.insien.orchestrator"          // always "true"
	LabelCluster   = "dev.insien.orchestrator.cluster"  // config: runtime.cluster; scopes list/reconcile
	LabelInstance  = "dev.insien.orchestrator.instance" // the orchestrator process that created it
	LabelSandboxID = "dev.insien.orchestrator.sandbox"
	LabelUserID    = "dev.insien.orchestrator.user"
	// LabelPool marks a workload started for a warm pool ("true"); it stays when a sandbox claims
	// it (a Docker container's labels cannot change), so it says how the workload began, and the
	// sandbox label, not this one, says what it is now.
	LabelPool = "dev.insien.orchestrator.pool"
	// LabelVolumeID names the persistent volume a runtime object (a Kubernetes claim) keeps.
	LabelVolumeID = "dev.insien.orchestrator.volume"
)

// Errors a driver returns so callers can tell outcomes apart without knowing the driver.
var (
	ErrNotFound      = errors.New("runtime: workload not found")
	ErrImageNotFound = errors.New("runtime: image not found")
	ErrUnavailable   = errors.New("runtime: unavailable")
	// ErrSpecRefused: the engine refused the Spec's settings (e.g. more CPUs than the host has).
	ErrSpecRefused = errors.New("runtime: the engine refused the workload's settings")
	// ErrNotSupported: the driver cannot do this at all (Kubernetes cannot pause a running Pod);
	// Capabilities says so in advance.
	ErrNotSupported = errors.New("runtime: not supported by this runtime")
)

// QuotaError: a quota of the runtime itself (a Kubernetes ResourceQuota or LimitRange) refused
// the workload. Reason is the runtime's own explanation (names and quantities, no secrets), fit
// for the client: it is the operator's quota, not the user's, and only the operator can lift it.
type QuotaError struct {
	Reason string
}

func (e *QuotaError) Error() string { return "runtime: quota exceeded: " + e.Reason }

// Capabilities says what a driver can do beyond the calls every driver supports, so that the API
// can tell clients before they try.
type Capabilities struct {
	Pause bool `json:"pause"` // Pause and Resume work; false: they return ErrNotSupported
	// ExecUser: Exec and Terminal run as the ExecSpec.User asked for; false: a User is
	// ErrNotSupported and everything runs as the sandbox's own user (Kubernetes exec has no user).
	ExecUser bool `json:"-"` // the API runs everything as the sandbox's user: nothing to tell clients
	// LogStreams: Logs writes the main process's stdout and stderr apart; false: the whole log,
	// interleaved as it was written, goes to stdout (the Kubernetes API serves one stream).
	LogStreams bool `json:"log_streams"`
	// LiveResize: Claim changes a running workload's CPU and memory limits; false: a Claim that
	// asks for other limits than the workload's is ErrNotSupported, so only a pool member of the
	// requested size can be claimed.
	LiveResize bool `json:"-"`
	// Volumes: Spec.Mounts are mounted into the workload (host directories, or the driver's own
	// volumes where it implements VolumeStore); false: a Spec with mounts is refused.
	Volumes bool `json:"volumes"`
	// DiskLimit: Spec.DiskMB is enforced (the engine's per-container storage size, a Pod's
	// ephemeral-storage limit); false: the engine cannot, and a Spec with DiskMB is refused.
	DiskLimit bool `json:"disk_limit"`
}

// Claim is what a running pool member becomes when a sandbox claims it.
type Claim struct {
	CPU      float64 // cores; 0: keep the member's
	MemoryMB int64   // 0: keep the member's
	// Labels are the sandbox's; a driver whose workloads keep their labels for life (Docker)
	// leaves the member's, which already name the sandbox (the member was created under its id).
	Labels map[string]string
}

// The smallest limits a driver can enforce. A limit below them is not a smaller limit: an engine
// either ignores it (no limit at all) or fails to start the workload, so callers must refuse it.
const (
	// MinCPU is in cores: the kernel's CFS refuses a quota under 1 ms per period and Docker's
	// period is 100 ms. Below it Docker either sets no quota (a NanoCPUs that rounds to a zero
	// quota means unlimited) or fails the start.
	MinCPU = 0.01
	// CPUStep is the precision of a CPU limit: a millicore, which both Docker (1 µs of quota per
	// 100 ms period, 0.00001 core) and Kubernetes (1m) represent exactly.
	CPUStep = 0.001
	// MinMemoryMB is the engine's minimum memory limit (Docker refuses less than 6 MiB).
	MinMemoryMB = 6
	// MinDiskMB is the smallest disk limit: enough for a shell to start and write its history
	// (on btrfs the image's own files count towards it too).
	MinDiskMB = 16
)

// DefaultWorkDir is a sandbox's working directory when neither the driver's options nor the Spec
// name one.
const DefaultWorkDir = "/workspace"

// SandboxCapabilities is the capability set every driver leaves a sandbox after dropping ALL. It
// is what a root shell needs to install packages and manage its own files and processes inside its
// own namespaces:
//
//   - CHOWN: package managers (dpkg, apk, pip --user installs via tar) chown extracted files.
//   - DAC_OVERRIDE: tools assume root can read/write files regardless of mode bits (e.g. apt
//     rewriting 0644 files owned by other users, editing 0640 /etc/shadow via useradd).
//   - FOWNER: chmod/utime on files the process does not own (tar preserving modes and mtimes).
//   - FSETID: keeps setuid/setgid bits when root writes such files, so installed packages have
//     their intended modes (no-new-privileges still stops those bits from granting anything).
//   - KILL: root signalling processes that run as another uid (a service that dropped privileges).
//   - SETGID, SETUID: dropping to an unprivileged user (apt's _apt sandbox, su, useradd'ed users).
//
// Deliberately left out of the container engines' default set: NET_RAW (raw sockets allow spoofing
// and ARP tricks on a shared bridge), MKNOD (no device nodes are needed), AUDIT_WRITE (host audit
// log), SYS_CHROOT and SETFCAP (escape-assisting helpers no shell workload needs), SETPCAP (only
// needed to shrink the bounding set, which is already done) and NET_BIND_SERVICE (Docker ≥ 20.10
// sets net.ipv4.ip_unprivileged_port_start=0 inside the container's network namespace, so low
// ports bind without it). Callers must not modify it.
var SandboxCapabilities = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID"}

// Spec describes the sandbox to create. Limits are absolute; the driver applies its own hardening.
type Spec struct {
	Name      string // unique, deterministic name (e.g. "sbx-<id>") so a retried create is detectable
	Image     string
	Command   []string          // empty: the image's default command
	Env       map[string]string // plain values; drivers must never log them
	Labels    map[string]string
	CPU       float64 // cores, e.g. 0.5; 0: the driver's default; otherwise at least MinCPU
	MemoryMB  int64   // 0: the driver's default; otherwise at least MinMemoryMB
	PidsLimit int64   // 0: the driver's default
	// DiskMB bounds what the workload writes to its own filesystem (Capabilities.DiskLimit); 0:
	// the driver's default (Kubernetes: sandbox.default_disk_mb's; Docker: none of its own, the
	// engine's default size if it has one). Otherwise at least MinDiskMB.
	DiskMB  int64
	WorkDir string
	Mounts  []Mount // persistent volumes mounted into the workload (Capabilities.Volumes)
}

// Mount puts a persistent volume into a workload: a directory of the engine's host (Source) on a
// driver that binds host directories, or one of the driver's own volumes (Volume) on a driver
// that implements VolumeStore. Exactly one of the two is set; a driver refuses the other kind.
type Mount struct {
	Source   string // a directory on the engine's host
	Volume   string // the name of a volume made with VolumeStore.CreateVolume
	Target   string // in the workload, absolute
	ReadOnly bool
}

// VolumeStore is implemented by drivers that keep persistent volumes in the runtime's own storage
// (Kubernetes: a PersistentVolumeClaim each) rather than binding directories of one host. The
// storage behind them, and the enforcement of their size, is the runtime's.
type VolumeStore interface {
	// CreateVolume makes the volume spec names. It does not wait for storage to be bound (a
	// cluster may bind it only once a workload that mounts it is scheduled); a storage that
	// cannot be had shows when a workload mounting it starts (a *VolumeError). A volume of the
	// same name and labels that exists already is success (a retried create).
	CreateVolume(ctx context.Context, spec VolumeSpec) error
	// RemoveVolume deletes a volume and its data; a missing one is success.
	RemoveVolume(ctx context.Context, name string) error
}

// VolumeSpec describes a volume to create.
type VolumeSpec struct {
	Name   string // unique, deterministic ("vol-<id>"), so that a retried create finds its volume
	SizeMB int64
	Labels map[string]string
}

// VolumeError: a workload could not start because a volume it mounts cannot be provided (no
// storage fits it, or none can be attached where the workload could run). Reason is the
// runtime's explanation, fit for the client: it names nodes, volumes and storage, nothing secret;
// only the operator can add storage.
type VolumeError struct {
	Reason string
}

func (e *VolumeError) Error() string { return "runtime: a volume cannot be provided: " + e.Reason }

// State is the runtime's view of a workload.
type State string

const (
	StateCreated State = "created"
	StateRunning State = "running"
	StatePaused  State = "paused"
	StateExited  State = "exited"
	StateUnknown State = "unknown"
)

// Info is what Inspect and List report about a workload.
type Info struct {
	ID       string
	Name     string
	State    State
	ExitCode int
	// OOMKilled: the out-of-memory killer ended the main process (not merely one of its children).
	OOMKilled  bool
	Evicted    bool // the node ended the workload to reclaim resources (see Event.Evicted)
	Error      string
	Labels     map[string]string
	StartedAt  time.Time
	FinishedAt time.Time
}

// EventKind says what an Event reports.
type EventKind string

const (
	// EventExited: the workload's main process ended; ExitCode and OOMKilled say how.
	EventExited EventKind = "exited"
	// EventGone: the workload was deleted by someone else (an operator, a node's failure), not
	// through Remove; it ran until then.
	EventGone EventKind = "gone"
	// EventResync: the event stream was (re)connected and events may have been lost before it;
	// the receiver must compare its state with List and Inspect.
	EventResync EventKind = "resync"
)

// Event is a change the runtime saw by itself, without being asked.
type Event struct {
	Kind   EventKind
	ID     string            // the workload's runtime id (empty for EventResync)
	Name   string            // the workload's name
	Labels map[string]string // the workload's orchestrator labels (the Label* keys it carries)
	// ExitCode is the main process's exit status, 128+signal when a signal killed it; -1 when
	// the driver could not learn it.
	ExitCode  int
	OOMKilled bool // the out-of-memory killer ended the main process
	// Evicted: the node ended the workload to reclaim resources (disk, memory pressure, its
	// ephemeral-storage limit), not its own process; ExitCode is then -1 or what was recorded.
	Evicted bool
}

// Runtime is implemented by each sandbox backend (Docker today, Kubernetes later).
type Runtime interface {
	Name() string
	Capabilities() Capabilities
	Ping(ctx context.Context) error
	Create(ctx context.Context, spec Spec) (id string, err error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, grace time.Duration) error
	Remove(ctx context.Context, id string) error // force; ErrNotFound-free: removing a missing workload succeeds
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	Inspect(ctx context.Context, id string) (Info, error)
	List(ctx context.Context, labels map[string]string) ([]Info, error)
	// Claim hands the running workload id (a warm pool member) to a sandbox: it checks that the
	// workload still runs, applies the claim's limits where they differ from the workload's and
	// its labels where the driver can. A workload that no longer runs is a *NotRunningError (or
	// ErrNotFound): the caller discards it and starts a sandbox the cold way.
	Claim(ctx context.Context, id string, c Claim) error
	// Watch reports the events of workloads that carry every one of labels until ctx ends, then
	// closes the channel. The driver reconnects by itself (with backoff) when its source breaks
	// and sends EventResync after each connection, the first included. Events may repeat:
	// receivers must be idempotent. The receiver must keep reading; a slow one delays the rest.
	Watch(ctx context.Context, labels map[string]string) <-chan Event
}

// Wrapper is a Runtime that adds to another one (metrics around every call, say); Unwrap returns
// the one it wraps.
type Wrapper interface {
	Unwrap() Runtime
}

// As finds the first runtime in rt's chain of Wrappers that implements T, an optional interface
// of a driver (Images, NetworkNamespaces, ...), as errors.As does for errors: a wrapper needs not
// forward every optional interface for the services that ask for one to find it.
func As[T any](rt Runtime) (T, bool) {
	for rt != nil {
		if t, ok := rt.(T); ok {
			return t, true
		}
		w, ok := rt.(Wrapper)
		if !ok {
			break
		}
		rt = w.Unwrap()
	}
	var zero T
	return zero, false
}

// BuildSpec is an image to build from a Dockerfile and the files it copies.
type BuildSpec struct {
	Tag        string
	Dockerfile string
	Files      map[string][]byte // relative paths in the build context
	MemoryMB   int64
	CPU        float64
	DiskMB     int64 // the most a step may write; 0: no bound of the build's own
}

// Image is an image the runtime built or committed.
type Image struct {
	ID        string
	SizeBytes int64
}

// BuildError is a build that failed in the Dockerfile (a step's command failed, an instruction
// was wrong), as opposed to the engine failing: Step is the step it failed at ("Step 2/3 : RUN
// make"), Message the builder's words.
type BuildError struct {
	Step    string
	Message string
}

func (e *BuildError) Error() string { return fmt.Sprintf("build failed at %q: %s", e.Step, e.Message) }

// Images is implemented by drivers that build and keep images on their engine (Docker): what
// templates and snapshots are made of.
type Images interface {
	// Build builds spec with no network, within its limits, writing the builder's output to log;
	// a failure of the Dockerfile is a *BuildError.
	Build(ctx context.Context, spec BuildSpec, log io.Writer) (Image, error)
	// Commit makes an image tagged tag of the running workload id's filesystem, pausing it for
	// the moment of the copy.
	Commit(ctx context.Context, id, tag string, labels map[string]string) (Image, error)
	// RemoveImage removes the image tagged tag; one already gone is no error.
	RemoveImage(ctx context.Context, tag string) error
}
