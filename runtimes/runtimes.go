// Package runtimes defines the sandbox runtime contract that the orchestration code depends on.
// It is free of Docker (or Kubernetes) types so that any driver can implement it.
package runtimes

import (
	"context"
	"errors"
	"time"
)

// Labels every driver attaches to a sandbox so that reconciliation can find its own workloads.
const (
	LabelManagedBy = "dev.insien.orchestrator"          // always "true"
	LabelCluster   = "dev.insien.orchestrator.cluster"  // config: runtime.cluster; scopes list/reconcile
	LabelInstance  = "dev.insien.orchestrator.instance" // the orchestrator process that created it
	LabelSandboxID = "dev.insien.orchestrator.sandbox"
	LabelUserID    = "dev.insien.orchestrator.user"
)

// Errors a driver returns so callers can tell outcomes apart without knowing the driver.
var (
	ErrNotFound      = errors.New("runtime: workload not found")
	ErrImageNotFound = errors.New("runtime: image not found")
	ErrUnavailable   = errors.New("runtime: unavailable")
)

// Spec describes the sandbox to create. Limits are absolute; the driver applies its own hardening.
type Spec struct {
	Name      string // unique, deterministic name (e.g. "sbx-<id>") so a retried create is detectable
	Image     string
	Command   []string          // empty: the image's default command
	Env       map[string]string // plain values; drivers must never log them
	Labels    map[string]string
	CPU       float64 // cores, e.g. 0.5
	MemoryMB  int64
	PidsLimit int64
	WorkDir   string
}

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
	ID         string
	Name       string
	State      State
	ExitCode   int
	Error      string
	Labels     map[string]string
	StartedAt  time.Time
	FinishedAt time.Time
}

// Runtime is implemented by each sandbox backend (Docker today, Kubernetes later).
type Runtime interface {
	Name() string
	Ping(ctx context.Context) error
	Create(ctx context.Context, spec Spec) (id string, err error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, grace time.Duration) error
	Remove(ctx context.Context, id string) error // force; ErrNotFound-free: removing a missing workload succeeds
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	Inspect(ctx context.Context, id string) (Info, error)
	List(ctx context.Context, labels map[string]string) ([]Info, error)
}
