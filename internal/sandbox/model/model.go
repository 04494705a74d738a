// Package model is the sandbox as every layer sees it: its fields, its states and the rules of
// the state machine. lifecycle drives the machine, repositories store it, handlers show it; none
// of them defines it again.
package model

import (
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Sandbox is one sandbox and everything known about it.
type Sandbox struct {
	ID             uuid.UUID
	UserID         uuid.UUID
	APIKeyID       *uuid.UUID // the key it was created with; nil for a Clerk session
	IdempotencyKey *string
	// IdempotencyFingerprint is a SHA-256 of the create request the key came with (nil before
	// fingerprints were recorded).
	IdempotencyFingerprint []byte
	Image                  string
	Command                []string
	Status                 Status
	EndReason              *string // why it ended (End*)
	ExitCode               *int    // the main process's status, when it ended by itself
	RuntimeID              *string
	Instance               string // the replica that created it
	CPU                    float64
	MemoryMB               int64
	DiskMB                 *int64 // nil: no disk limit (the runtime cannot enforce one)
	Metadata               map[string]string
	EnvNames               []string
	EnvEncrypted           []byte // the env, sealed (envcrypt): never cached, never shown
	TimeoutSeconds         int
	CreatedAt              time.Time
	UpdatedAt              time.Time
	StartedAt              *time.Time
	ExpiresAt              time.Time
	EndedAt                *time.Time
	PausedAt               *time.Time
	AutoExtend             bool
	Start                  string // StartCold or StartWarm
	PreviewGeneration      int    // preview URLs issued under an older one are revoked
	PublicPorts            []int  // ports whose preview host opens without a token
	Network                Network
	Volumes                []VolumeMount
}

// SpecDiskMB is the runtime Spec's DiskMB for a stored disk limit (nil, no limit, is 0).
func SpecDiskMB(limit *int64) int64 {
	if limit == nil {
		return 0
	}
	return *limit
}

// VolumeMount is a volume a sandbox mounts, and where.
type VolumeMount struct {
	VolumeID uuid.UUID `json:"volume_id"`
	Path     string    `json:"path"`
	ReadOnly bool      `json:"read_only"`
}

// NamePattern is what a user may call a volume or a template: unique among their own.
var NamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// NameRule says NamePattern in words, for clients.
const NameRule = "name must be 1 to 63 lower case letters, digits, '-', '_' or '.', starting with a letter or digit"

// Volume is a user's persistent filesystem of a fixed size.
type Volume struct {
	ID        uuid.UUID
	UserID    uuid.UUID
	Name      string
	SizeMB    int
	CreatedAt time.Time
}

// Network is a sandbox's egress policy as its owner set it (package egress enforces it).
type Network struct {
	Egress string   `json:"egress"`          // one of the Egress* modes
	Allow  []string `json:"allow,omitempty"` // CIDRs, IPs and domain names (with an optional "*.")
	Deny   []string `json:"deny,omitempty"`  // the same; a deny beats an allow
}

// Egress modes: what a sandbox may reach outside.
const (
	EgressNone  = "none"  // nothing: the sandbox has no route out
	EgressAllow = "allow" // only what its allow list names (minus its deny list)
	EgressAll   = "all"   // anything but its deny list
)

// EgressModes are every mode, the most closed first.
var EgressModes = []string{EgressNone, EgressAllow, EgressAll}

// Open reports whether the policy lets anything out.
func (n Network) Open() bool { return n.Egress == EgressAllow || n.Egress == EgressAll }

// How a sandbox started (start), so that clients and benchmarks can tell.
const (
	StartCold = "cold" // a container was created and started for it
	StartWarm = "warm" // it claimed a member of a warm pool, already running
)

// RuntimeLabels are the labels of a sandbox's workload: reconciliation finds its own by cluster
// and maps each back to its row by sandbox id; instance and owner say who made it for whom. A
// pool member has no owner yet (uuid.Nil) and carries runtimes.LabelPool instead.
func RuntimeLabels(cluster, instance string, id, owner uuid.UUID) map[string]string {
	labels := map[string]string{
		runtimes.LabelManagedBy: "true", runtimes.LabelCluster: cluster,
		runtimes.LabelInstance: instance, runtimes.LabelSandboxID: id.String(),
	}
	if owner == uuid.Nil {
		labels[runtimes.LabelPool] = "true"
	} else {
		labels[runtimes.LabelUserID] = owner.String()
	}
	return labels
}

// ContainerName is the runtime name of a sandbox (or of the pool member that becomes it):
// deterministic, so every step can find it.
func ContainerName(id uuid.UUID) string { return "sbx-" + id.String() }

// VolumeName is the runtime name of a volume kept by the runtime itself (a Kubernetes claim):
// deterministic, so a retried create finds it and a delete needs nothing but the id.
func VolumeName(id uuid.UUID) string { return "vol-" + id.String() }

// Status is where a sandbox is in its life:
//
//	pending → running ⇄ paused → stopping → stopped | failed | expired
//
// A sandbox whose main process ends goes from running or paused straight to stopped or failed
// (nothing is left to stop); one whose start fails goes from pending to failed. Every change is
// one conditional UPDATE from the states it may come from, so two replicas never both make it.
type Status string

// The states.
const (
	StatusPending  Status = "pending"
	StatusRunning  Status = "running"
	StatusPaused   Status = "paused"
	StatusStopping Status = "stopping"
	StatusStopped  Status = "stopped"
	StatusFailed   Status = "failed"
	StatusExpired  Status = "expired"
)

var (
	// Statuses are every state, in the order of a sandbox's life.
	Statuses = []Status{StatusPending, StatusRunning, StatusPaused, StatusStopping, StatusStopped, StatusFailed, StatusExpired}
	// Live are the states that hold runtime resources and count against quotas.
	Live = []Status{StatusPending, StatusRunning, StatusPaused, StatusStopping}
	// Up are the states in which the main process runs, frozen or not.
	Up = []Status{StatusRunning, StatusPaused}
	// Stoppable are the states a sandbox leaves for stopping when its owner deletes it (or is
	// deleted); a stopping or ended one is already on its way.
	Stoppable = []Status{StatusPending, StatusRunning, StatusPaused}
)

// In reports whether s is one of states.
func (s Status) In(states []Status) bool { return slices.Contains(states, s) }

// Why a sandbox ended (end_reason), as clients read it.
const (
	EndDeleted            = "deleted"             // DELETE by its owner
	EndUserDeleted        = "user_deleted"        // its owner's account was deleted
	EndExpired            = "expired"             // its timeout or max lifetime passed
	EndCreateInterrupted  = "create_interrupted"  // the replica creating it died meanwhile
	EndProcessExited      = "process_exited"      // its main process exited; exit_code says how
	EndOOMKilled          = "oom_killed"          // the out-of-memory killer ended its main process
	EndRuntimeLost        = "runtime_lost"        // its container disappeared from the runtime
	EndEvicted            = "evicted"             // the node ended it to reclaim disk or memory (Kubernetes)
	EndStartFailed        = "start_failed"        // the runtime refused to create or start it
	EndImageUnavailable   = "image_unavailable"   // its image is not on the server
	EndRuntimeUnavailable = "runtime_unavailable" // the runtime did not answer while creating it
	EndQuotaExceeded      = "quota_exceeded"      // the runtime's own quota (Kubernetes ResourceQuota) refused it
	EndLimitsRefused      = "limits_refused"      // the runtime cannot apply its cpu or memory
	EndVolumeUnavailable  = "volume_unavailable"  // the runtime's storage cannot provide a volume it mounts (Kubernetes)
)

// Final is where a sandbox ends, given why: a main process that exited with 0 finished its work
// (stopped), as does a sandbox its owner deleted; an expired one is expired; any other end that
// its owner did not ask for is failed.
func Final(endReason *string, exitCode *int) Status {
	if endReason == nil {
		return StatusStopped
	}
	switch *endReason {
	case EndExpired:
		return StatusExpired
	case EndDeleted, EndUserDeleted:
		return StatusStopped
	case EndProcessExited:
		if exitCode != nil && *exitCode == 0 {
			return StatusStopped
		}
	}
	return StatusFailed
}

// Template is an image a user made: built from a Dockerfile, or a snapshot of a sandbox.
type Template struct {
	ID          uuid.UUID
	UserID      uuid.UUID
	Name        string
	Source      string // TemplateFromDockerfile or TemplateFromSnapshot
	Status      string // TemplateBuilding, TemplateReady or TemplateFailed
	Image       string // the engine's tag
	ContextHash string
	Error       *string
	FailedStep  *string
	SizeBytes   int64
	Instance    string
	CreatedAt   time.Time
	FinishedAt  *time.Time
}

// Template sources and states.
const (
	TemplateFromDockerfile = "dockerfile"
	TemplateFromSnapshot   = "snapshot"
	TemplateBuilding       = "building"
	TemplateReady          = "ready"
	TemplateFailed         = "failed"
)
