// Package lifecycle is the orchestration core: it validates requests, enforces quotas, drives the
// sandbox state machine (its states and rules are in package model) atomically in Postgres, and
// makes the runtime match it: creating, following the runtime's events, reaping expired and
// reconciling containers.
package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/cache"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/page"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/egress"
	"github.com/insien/orchestrator/internal/sandbox/envcrypt"
	"github.com/insien/orchestrator/internal/sandbox/liveconns"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/internal/sandbox/pool"
	"github.com/insien/orchestrator/internal/sandbox/templates"
	"github.com/insien/orchestrator/internal/sandbox/volumes"
	"github.com/insien/orchestrator/repositories"
)

// RuntimeBudget bounds the runtime work of one create or destroy, independent of the client: a
// client that disconnects must not leave a half-created sandbox behind.
const RuntimeBudget = 2 * time.Minute

// withRuntimeBudget is ctx's values without its cancellation, bounded by RuntimeBudget: for work
// on the runtime and the row that must finish together whether or not the client stays.
func withRuntimeBudget(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), RuntimeBudget)
}

// Caller is who asks: the user, and the API key when one was used.
type Caller struct {
	UserID   uuid.UUID
	APIKeyID *uuid.UUID
}

// Service manages sandboxes.
type Service struct {
	rows       *repositories.Sandboxes
	rt         runtimes.Runtime
	ports      runtimes.Ports
	pool       *pool.Pool
	egress     *egress.Service
	volumes    *volumes.Service
	templates  *templates.Service
	runtimeCfg config.Runtime
	sealer     *envcrypt.Sealer
	rdb        *redis.Client
	conns      *liveconns.Registry
	views      *cache.Local[view] // nil when sandbox.view_local_ttl is 0
	owners     *otter.Cache[uuid.UUID, uuid.UUID]
	cfg        config.Sandbox
	instance   string
	started    time.Time
	log        *zap.Logger
	metrics    *serviceMetrics
	warm       *warmBatches

	reaped    atomic.Int64
	stopLoops context.CancelFunc
	loops     sync.WaitGroup
}

// Params are the service's dependencies.
type Params struct {
	fx.In
	Sandboxes     *repositories.Sandboxes
	Runtime       runtimes.Runtime
	Ports         runtimes.Ports
	Pool          *pool.Pool
	Egress        *egress.Service
	Volumes       *volumes.Service
	Templates     *templates.Service
	RuntimeConfig config.Runtime
	Sealer        *envcrypt.Sealer
	Redis         *redis.Client
	Conns         *liveconns.Registry
	Sandbox       config.Sandbox
	App           config.App
	Log           *zap.Logger
	Metrics       prometheus.Registerer
}

// NewService builds the service; its loops run from Start to Stop.
func NewService(p Params) (*Service, error) {
	s := &Service{rows: p.Sandboxes, rt: p.Runtime, ports: p.Ports, pool: p.Pool, egress: p.Egress, volumes: p.Volumes, templates: p.Templates, runtimeCfg: p.RuntimeConfig, sealer: p.Sealer, rdb: p.Redis,
		conns: p.Conns, cfg: p.Sandbox, instance: p.App.InstanceName(), started: time.Now(), log: p.Log.Named("sandboxes")}
	s.warm = &warmBatches{serve: s.serveWarm}
	s.metrics = newServiceMetrics(p.Metrics, p.Sandboxes, s.log)
	owners, err := otter.New(&otter.Options[uuid.UUID, uuid.UUID]{MaximumSize: viewCacheSize})
	if err != nil {
		return nil, fmt.Errorf("build the sandbox owner cache: %w", err)
	}
	s.owners = owners
	if p.Sandbox.ViewLocalTTL > 0 {
		views, err := cache.NewLocal[view](p.Redis, changedChannel, viewCacheSize, p.Sandbox.ViewLocalTTL, nil)
		if err != nil {
			return nil, fmt.Errorf("build the sandbox view cache: %w", err)
		}
		s.views = views
	}
	return s, nil
}

// RuntimeInfo is what clients may know of the runtime behind their sandboxes.
type RuntimeInfo struct {
	Driver       string                `json:"driver"`
	Capabilities runtimes.Capabilities `json:"capabilities"`
}

// Runtime says which driver runs sandboxes and what it can do, so that clients know before they
// try (a Kubernetes runtime cannot pause).
func (s *Service) Runtime() RuntimeInfo {
	return RuntimeInfo{Driver: s.rt.Name(), Capabilities: s.rt.Capabilities()}
}

// Reaped counts the sandboxes this replica has expired (for tests and metrics).
func (s *Service) Reaped() int64 { return s.reaped.Load() }

// Create validates the request, reserves quota, starts the container and returns the sandbox
// once it runs. A retried request with the same Idempotency-Key returns the first sandbox
// (replayed=true) and never creates a second one; the same key with a different request is
// refused (422 idempotency_key_reused).
func (s *Service) Create(ctx context.Context, caller Caller, in CreateInput) (sb *model.Sandbox, replayed bool, err error) {
	began := time.Now()
	if in.Template != "" {
		if in.Image != "" {
			return nil, false, apierror.Invalid("template", "give image or template, not both")
		}
		resolved := in
		if resolved.template, err = s.templates.Resolve(ctx, caller.UserID, in.Template); err != nil {
			return nil, false, err
		}
		resolved.Image = resolved.template.Image
		in = resolved
	}
	sp, err := validate(in, s.cfg, s.rt.Capabilities().DiskLimit)
	if err != nil {
		return nil, false, err
	}
	if in.Network != nil {
		if sp.network, err = s.egress.Normalize(*in.Network); err != nil {
			return nil, false, err
		}
	}
	if err := s.volumes.Validate(in.Volumes); err != nil {
		return nil, false, err
	}
	if in.IdempotencyKey != "" {
		if existing, err := s.rows.ByIdempotencyKey(ctx, caller.UserID, in.IdempotencyKey); err == nil {
			return s.replay(existing, in)
		} else if !errors.Is(err, repositories.ErrNotFound) {
			return nil, false, fmt.Errorf("looking up the Idempotency-Key: %w", err)
		}
	}
	sb = s.newSandbox(caller, in, sp)
	// A pool member was started without the volumes a create may ask for: those start cold.
	if s.pool.Serves(sb.Image, sb.Command) && len(in.Volumes) == 0 {
		c := &warmCreate{ctx: ctx, caller: caller, template: in.template, sb: sb, env: sp.env}
		if err := s.warm.submit(c); err != nil {
			return nil, false, err
		}
		switch {
		case c.served && c.sb.Status == model.StatusRunning:
			s.metrics.created(c.sb, began)
			return c.sb, false, nil
		case c.served:
			return s.run(ctx, c.sb, sp, began)
		case c.err != nil:
			return s.notReserved(ctx, caller, in, c.err)
		}
	}
	if err := s.reserve(ctx, caller, in, sb, sp); err != nil {
		return s.notReserved(ctx, caller, in, err)
	}
	return s.run(ctx, sb, sp, began)
}

// reserve inserts the pending row of a create that starts cold, within its owner's quota and the
// instance's capacity.
func (s *Service) reserve(ctx context.Context, caller Caller, in CreateInput, sb *model.Sandbox, sp spec) error {
	return s.rows.InTx(ctx, func(ctx context.Context, rows *repositories.Sandboxes) error {
		// The user's lock, then the instance's: every transaction takes them in this order.
		mine, err := rows.LockOwnerCountLive(ctx, caller.UserID)
		if errors.Is(err, repositories.ErrNotFound) {
			return apierror.AccountDeleted()
		} else if err != nil {
			return err
		}
		if mine >= s.cfg.MaxPerUser {
			return quotaExceeded("you already have %d live sandboxes, the maximum", mine)
		}
		if err := rows.LockCapacity(ctx); err != nil {
			return err
		}
		used, err := rows.CountCapacity(ctx)
		if err != nil {
			return err
		}
		if used >= s.cfg.MaxPerInstance {
			return quotaExceeded("this server runs %d sandboxes, its maximum; retry later", used)
		}
		if in.template != nil {
			if err := templates.Hold(ctx, rows, in.template); err != nil {
				return err
			}
		}
		if sb.Volumes, err = s.volumes.Attach(ctx, rows, caller.UserID, in.Volumes); err != nil {
			return err
		}
		if err := s.seal(sb, sp.env); err != nil {
			return err
		}
		return rows.Insert(ctx, sb)
	})
}

// notReserved is the answer to a create whose row could not be inserted: the first sandbox when
// a concurrent request with the same Idempotency-Key inserted first, else the error.
func (s *Service) notReserved(ctx context.Context, caller Caller, in CreateInput, err error) (*model.Sandbox, bool, error) {
	if errors.Is(err, repositories.ErrConflict) && in.IdempotencyKey != "" {
		existing, err := s.rows.ByIdempotencyKey(ctx, caller.UserID, in.IdempotencyKey)
		if err != nil {
			return nil, false, fmt.Errorf("replaying a concurrent create with the same Idempotency-Key: %w", err)
		}
		return s.replay(existing, in)
	}
	return nil, false, fmt.Errorf("reserving quota for a sandbox: %w", err)
}

// run starts the workload of a pending row (cold, or a warm member to be resized) and returns the
// sandbox once it runs.
func (s *Service) run(ctx context.Context, sb *model.Sandbox, sp spec, began time.Time) (*model.Sandbox, bool, error) {
	runCtx, cancel := withRuntimeBudget(ctx)
	defer cancel()
	start := s.start
	if sb.Start == model.StartWarm {
		start = s.startWarm
	}
	started, err := start(runCtx, sb, sp)
	if err != nil {
		return nil, false, err
	}
	s.metrics.created(started, began)
	return started, false, nil
}

func quotaExceeded(format string, args ...any) error {
	return apierror.TooManyRequests("quota_exceeded", format, args...)
}

// newSandbox is the pending sandbox a create inserts (its env is sealed once its id is final).
func (s *Service) newSandbox(caller Caller, in CreateInput, sp spec) *model.Sandbox {
	row := &model.Sandbox{
		ID: uuid.New(), UserID: caller.UserID, APIKeyID: caller.APIKeyID, Image: sp.image, Command: sp.command,
		Status: model.StatusPending, Instance: s.instance, CPU: sp.cpu, MemoryMB: sp.memoryMB, DiskMB: sp.diskMB,
		Metadata: sp.metadata, EnvNames: []string{}, PublicPorts: []int{}, Volumes: []model.VolumeMount{}, TimeoutSeconds: int(sp.timeout / time.Second), AutoExtend: sp.autoExtend,
		ExpiresAt: time.Now().Add(sp.timeout), Start: model.StartCold, Network: sp.network,
	}
	if row.Network.Egress == "" {
		row.Network.Egress = model.EgressNone
	}
	if row.Command == nil {
		row.Command = []string{}
	}
	if row.Metadata == nil {
		row.Metadata = map[string]string{}
	}
	if in.IdempotencyKey != "" {
		row.IdempotencyKey = &in.IdempotencyKey
		row.IdempotencyFingerprint = in.fingerprint()
	}
	return row
}

// seal stores env in the row, encrypted and bound to the row's id.
func (s *Service) seal(row *model.Sandbox, env map[string]string) error {
	if len(env) == 0 {
		return nil
	}
	plain, _ := json.Marshal(env)
	sealed, err := s.sealer.Seal(plain, row.ID[:])
	if err != nil {
		return fmt.Errorf("sealing the env of sandbox %s: %w", row.ID, err)
	}
	row.EnvEncrypted = sealed
	row.EnvNames = slices.Sorted(maps.Keys(env))
	return nil
}

// start creates and starts the container of a pending row. On failure the row ends failed with
// a reason a client may read (the runtime's own words are only logged) and no container is left.
func (s *Service) start(ctx context.Context, row *model.Sandbox, sp spec) (*model.Sandbox, error) {
	name := model.ContainerName(row.ID)
	mounts, err := s.volumes.Mounts(ctx, row.Volumes)
	if err != nil {
		return nil, s.failStart(ctx, row, err)
	}
	runtimeID, err := s.rt.Create(ctx, runtimes.Spec{
		Name: name, Image: row.Image, Command: row.Command, Env: sp.env, CPU: row.CPU, MemoryMB: row.MemoryMB,
		DiskMB: model.SpecDiskMB(row.DiskMB), PidsLimit: s.cfg.PidsLimit, Labels: s.labels(row), Mounts: mounts,
	})
	if err == nil {
		err = s.rt.Start(ctx, runtimeID)
	}
	if err == nil {
		err = s.openEgress(ctx, row, runtimeID)
	}
	if err != nil {
		return nil, s.failStart(ctx, row, err)
	}
	running, err := s.markRunning(ctx, row, runtimeID)
	if err != nil {
		return nil, err
	}
	// A main process that died at once (a command that does not exist: the init starts, then
	// fails to exec it) is caught here. The check comes after the row is running so that no exit
	// falls between two chairs: an earlier one shows here, a later one reaches the event watcher
	// as the death of a running sandbox.
	if end, over := s.settle(ctx, running.ID); over {
		code := "unknown"
		if end.exitCode != nil {
			code = strconv.Itoa(*end.exitCode)
		}
		return nil, apierror.Unprocessable("sandbox_exited",
			"sandbox %s stopped at once: its command exited with code %s (%s); a sandbox's command must keep running", row.ID, code, end.reason)
	}
	return running, nil
}

// startWarm readies a claimed pool member for its sandbox: its limits become the request's and it
// is relabelled where the runtime can. A member that died since the pool last looked is removed,
// and the sandbox starts cold under the same row, unknown to the client.
func (s *Service) startWarm(ctx context.Context, row *model.Sandbox, sp spec) (*model.Sandbox, error) {
	err := s.rt.Claim(ctx, *row.RuntimeID, runtimes.Claim{CPU: row.CPU, MemoryMB: row.MemoryMB, Labels: s.labels(row)})
	if errors.Is(err, runtimes.ErrNotRunning) || errors.Is(err, runtimes.ErrNotFound) {
		s.log.Info("a claimed pool member no longer ran; starting the sandbox cold", zap.Stringer("sandbox", row.ID), zap.Error(err))
		if err := s.rt.Remove(ctx, model.ContainerName(row.ID)); err != nil {
			return nil, s.failStart(ctx, row, err)
		}
		row.Start = model.StartCold
		return s.start(ctx, row, sp)
	}
	if err == nil {
		err = s.openEgress(ctx, row, *row.RuntimeID)
	}
	if err != nil {
		return nil, s.failStart(ctx, row, err)
	}
	return s.markRunning(ctx, row, *row.RuntimeID)
}

// openEgress opens a starting sandbox's route out when its policy asks for one, before anyone can
// use the sandbox: its first command already sees its network.
func (s *Service) openEgress(ctx context.Context, row *model.Sandbox, runtimeID string) error {
	if !row.Network.Open() {
		return nil
	}
	started := *row
	started.RuntimeID = &runtimeID
	return s.egress.Apply(ctx, &started)
}

// openEnv returns a sandbox's env from its sealed copy (nil when it has none).
func (s *Service) openEnv(sb *model.Sandbox) (map[string]string, error) {
	if len(sb.EnvEncrypted) == 0 {
		return nil, nil
	}
	plain, err := s.sealer.Open(sb.EnvEncrypted, sb.ID[:])
	if err != nil {
		return nil, fmt.Errorf("opening the env of sandbox %s: %w", sb.ID, err)
	}
	var env map[string]string
	if err := json.Unmarshal(plain, &env); err != nil {
		return nil, fmt.Errorf("decoding the env of sandbox %s: %w", sb.ID, err)
	}
	return env, nil
}

// ExecEnv is the env every command run in sb must be given. A cold sandbox's container was
// created with its env, so it needs none; a warm one started before its env was known (a running
// container's env cannot change), so each exec and terminal carries it, read from the sealed copy
// in Postgres (never cached).
func (s *Service) ExecEnv(ctx context.Context, sb *model.Sandbox) (map[string]string, error) {
	if sb.Start != model.StartWarm || len(sb.EnvNames) == 0 {
		return nil, nil
	}
	row, err := s.owned(ctx, sb.UserID, sb.ID)
	if err != nil {
		return nil, err
	}
	return s.openEnv(row)
}

// labels are the runtime labels of a user's sandbox.
func (s *Service) labels(row *model.Sandbox) map[string]string {
	return model.RuntimeLabels(s.runtimeCfg.Cluster, s.instance, row.ID, row.UserID)
}

// markRunning records that a pending sandbox's workload runs; its clock starts now. A sandbox
// deleted meanwhile has its workload removed here (whoever deleted it finalised the row).
func (s *Service) markRunning(ctx context.Context, row *model.Sandbox, runtimeID string) (*model.Sandbox, error) {
	now := time.Now()
	running, err := s.rows.Transition(ctx, row.ID, []model.Status{model.StatusPending}, model.StatusRunning, map[string]any{
		"runtime_id": runtimeID, "started_at": now, "expires_at": now.Add(time.Duration(row.TimeoutSeconds) * time.Second),
		"start": row.Start,
	})
	if errors.Is(err, repositories.ErrNotFound) {
		// Deleted while starting: whoever deleted it finalised the row; the workload is ours to remove.
		_ = s.rt.Remove(ctx, model.ContainerName(row.ID))
		return nil, apierror.Conflict("sandbox_deleted", "the sandbox was deleted while it was starting")
	}
	if err != nil {
		return nil, fmt.Errorf("recording that sandbox %s runs: %w", row.ID, err)
	}
	s.changed(ctx, running)
	return running, nil
}

// failStart ends a pending row whose container could not be created or started.
func (s *Service) failStart(ctx context.Context, row *model.Sandbox, cause error) error {
	if err := s.rt.Remove(ctx, model.ContainerName(row.ID)); err != nil {
		s.log.Warn("removing a container that failed to start", zap.Stringer("sandbox", row.ID), zap.Error(err))
	}
	reason, apiErr := startFailure(row, cause)
	s.log.Warn("sandbox failed to start", zap.Stringer("sandbox", row.ID), zap.String("end_reason", reason), zap.Error(cause))
	if _, err := s.rows.Transition(ctx, row.ID, []model.Status{model.StatusPending}, model.StatusFailed,
		map[string]any{"end_reason": reason, "ended_at": time.Now()}); err != nil && !errors.Is(err, repositories.ErrNotFound) {
		s.log.Error("recording a failed start", zap.Stringer("sandbox", row.ID), zap.Error(err))
	}
	s.changed(ctx, row)
	return apiErr
}

// startFailure is the end_reason and client error of a failed start. Neither carries the
// engine's text (it names host paths and cgroups); the cause goes to the log only.
func startFailure(row *model.Sandbox, cause error) (string, error) {
	var (
		quota  *runtimes.QuotaError
		volume *runtimes.VolumeError
	)
	switch {
	case errors.Is(cause, runtimes.ErrImageNotFound):
		return model.EndImageUnavailable, apierror.Unprocessable("image_unavailable",
			"image %q is not available on this server", row.Image).WithCause(cause)
	case errors.Is(cause, runtimes.ErrUnavailable):
		return model.EndRuntimeUnavailable, apierror.Unavailable("runtime_unavailable",
			"the sandbox runtime is unavailable; sandbox %s failed, retry later", row.ID).WithCause(cause)
	case errors.As(cause, &quota):
		return model.EndQuotaExceeded, apierror.Conflict("runtime_quota_exceeded",
			"the runtime's quota refused sandbox %s: %s; retry once other sandboxes ended, or ask the operator to raise it",
			row.ID, quota.Reason).WithCause(cause)
	case errors.Is(cause, runtimes.ErrNotSupported):
		// The engine refused what it said it could do (a disk limit on xfs without prjquota).
		return model.EndLimitsRefused, apierror.Conflict("not_supported_by_runtime",
			"this server's runtime cannot limit a sandbox's disk after all; leave disk_mb out").WithCause(cause)
	case errors.As(cause, &volume):
		return model.EndVolumeUnavailable, apierror.Conflict("volume_unavailable",
			"the runtime's storage cannot provide a volume of sandbox %s: %s; ask the operator for storage that fits it",
			row.ID, volume.Reason).WithCause(cause)
	case errors.Is(cause, runtimes.ErrSpecRefused):
		return model.EndLimitsRefused, apierror.Unprocessable("limits_unavailable",
			"this server cannot run a sandbox with cpu %g and memory_mb %d (it may have fewer CPUs or less memory); ask for less",
			row.CPU, row.MemoryMB).WithCause(cause)
	}
	return model.EndStartFailed, apierror.BadGateway("sandbox_start_failed",
		"sandbox %s failed to start (the runtime's reason is in the server log)", row.ID).WithCause(cause)
}

// Get returns a user's sandbox, from the Redis copy when fresh.
func (s *Service) Get(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error) {
	return s.read(ctx, userID, id, cache.Read[model.Sandbox](ctx, s.rdb, cacheKey(id)))
}

// Live is what a sandbox's view adds to its row: its live connections on every replica (0 if
// Redis is unreachable: the count is advisory) and the TCP ports something listens on inside it
// (running sandboxes only; none when the runtime cannot tell).
type Live struct {
	Connections int
	Ports       []int
}

// View is Get plus Live. A view this replica read within sandbox.view_local_ttl costs no round
// trip; otherwise the Redis copy and the count come in one, and the ports from the runtime.
func (s *Service) View(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, Live, error) {
	if s.views == nil {
		v, err := s.viewShared(ctx, userID, id)
		if err != nil {
			return nil, Live{}, err
		}
		return &v.sandbox, v.live, nil
	}
	// Keyed by owner too: a load runs for the user who asked, and another user's request for the
	// same id (a 404, never kept) can neither join nor spoil it.
	v, err := s.views.Get(ctx, viewKey(userID, id), func(ctx context.Context) (view, error) {
		return s.viewShared(ctx, userID, id)
	})
	if err != nil {
		return nil, Live{}, err
	}
	sb := v.sandbox
	return &sb, v.live, nil
}

// viewShared reads a view from Redis (the copy and the count in one round trip), the copy from
// Postgres when Redis has none, and the listening ports from the runtime.
func (s *Service) viewShared(ctx context.Context, userID, id uuid.UUID) (view, error) {
	pipe := s.rdb.Pipeline()
	entry := cache.Queue[model.Sandbox](ctx, pipe, cacheKey(id))
	conns := s.conns.QueueCount(ctx, pipe, id)
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Debug("reading the copy and connections of a sandbox", zap.Error(err))
	}
	sb, err := s.read(ctx, userID, id, entry)
	if err != nil {
		return view{}, err
	}
	sb.EnvEncrypted = nil // secrets stay in Postgres only
	live := Live{Connections: int(conns.Val()), Ports: []int{}}
	if sb.Status == model.StatusRunning && sb.RuntimeID != nil {
		if ports, err := s.ports.ListeningPorts(ctx, *sb.RuntimeID); err == nil {
			// The egress proxy listens inside an open sandbox too: not the sandbox's port.
			live.Ports = slices.DeleteFunc(ports, s.egress.Reserved)
		} else {
			s.log.Debug("listing a sandbox's ports", zap.Stringer("sandbox", id), zap.Error(err))
		}
	}
	return view{sandbox: *sb, live: live}, nil
}

// owned reads a user's sandbox from Postgres: 404 when it is not theirs or does not exist.
func (s *Service) owned(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error) {
	sb, err := s.rows.Get(ctx, userID, id)
	if errors.Is(err, repositories.ErrNotFound) {
		return nil, apierror.NotFound("sandbox")
	}
	if err != nil {
		return nil, fmt.Errorf("reading sandbox %s: %w", id, err)
	}
	return sb, nil
}

// ListInput filters and pages a listing.
type ListInput struct {
	Status   string
	Metadata map[string]string
	Limit    int // 1 to 100
	Cursor   string
}

// DefaultListLimit is the page size when a caller names none.
const DefaultListLimit = 20

// List returns a page of the user's sandboxes, newest first, and the cursor of the next page.
func (s *Service) List(ctx context.Context, userID uuid.UUID, in ListInput) ([]model.Sandbox, string, error) {
	p, err := page.Parse(in.Limit, in.Cursor)
	if err != nil {
		return nil, "", err
	}
	f := repositories.ListFilter{UserID: userID, Status: model.Status(in.Status), Metadata: in.Metadata, Limit: p.Fetch(), After: p.After}
	if f.Status != "" && !f.Status.In(model.Statuses) {
		return nil, "", apierror.Invalid("status", "unknown status %q", f.Status)
	}
	rows, err := s.rows.List(ctx, f)
	if err != nil {
		return nil, "", fmt.Errorf("listing sandboxes: %w", err)
	}
	rows, next := page.Cut(p, rows, func(sb model.Sandbox) page.Cursor { return page.Cursor{At: sb.CreatedAt, ID: sb.ID} })
	return rows, next, nil
}

// Delete stops and removes a user's sandbox. Deleting an ended (or ending) sandbox succeeds;
// of two concurrent deletes exactly one removes the container.
func (s *Service) Delete(ctx context.Context, userID, id uuid.UUID) error {
	if _, err := s.owned(ctx, userID, id); err != nil {
		return err
	}
	claimed, err := s.rows.Transition(ctx, id, model.Stoppable, model.StatusStopping, map[string]any{"end_reason": model.EndDeleted})
	if errors.Is(err, repositories.ErrNotFound) {
		return nil // already ending or ended
	}
	if err != nil {
		return fmt.Errorf("claiming sandbox %s to delete it: %w", id, err)
	}
	s.changed(ctx, claimed)
	runCtx, cancel := withRuntimeBudget(ctx)
	defer cancel()
	if err := s.destroy(runCtx, claimed); err != nil {
		return runtimeFailed("deleted", id, err, "it is stopping, and the server keeps trying to remove it")
	}
	return nil
}

// DestroyAllForUser ends every live sandbox of a user (the account was deleted). The sandboxes
// are claimed at once and their containers removed in parallel; one that fails to go stays
// stopping, and the reconciler finishes it.
func (s *Service) DestroyAllForUser(ctx context.Context, userID uuid.UUID, reason string) error {
	live, err := s.rows.LiveForUser(ctx, userID)
	if err != nil {
		return fmt.Errorf("finding the sandboxes of user %s: %w", userID, err)
	}
	var claimed []model.Sandbox
	for _, sb := range live {
		c, err := s.rows.Transition(ctx, sb.ID, model.Stoppable, model.StatusStopping, map[string]any{"end_reason": reason})
		if errors.Is(err, repositories.ErrNotFound) {
			continue // already ending
		}
		if err != nil {
			return fmt.Errorf("claiming sandbox %s of user %s: %w", sb.ID, userID, err)
		}
		claimed = append(claimed, *c)
	}
	runCtx, cancel := withRuntimeBudget(ctx)
	defer cancel()
	s.destroyAll(runCtx, claimed, nil)
	return nil
}

// SetTimeout sets expires_at to now + seconds, bounded by max lifetime from creation.
func (s *Service) SetTimeout(ctx context.Context, userID, id uuid.UUID, seconds int) (*model.Sandbox, error) {
	d, err := validTimeout(seconds, s.cfg)
	if err != nil {
		return nil, err
	}
	return s.extend(ctx, userID, id, func(*model.Sandbox) time.Duration { return d })
}

// KeepAlive pushes expires_at to now + the sandbox's own timeout, bounded by max lifetime.
func (s *Service) KeepAlive(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error) {
	return s.extend(ctx, userID, id, func(sb *model.Sandbox) time.Duration {
		return time.Duration(sb.TimeoutSeconds) * time.Second
	})
}

func (s *Service) extend(ctx context.Context, userID, id uuid.UUID, by func(*model.Sandbox) time.Duration) (*model.Sandbox, error) {
	sb, err := s.owned(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	updated, err := s.rows.SetExpiry(ctx, userID, id, s.withinLifetime(sb, time.Now().Add(by(sb))))
	if errors.Is(err, repositories.ErrNotFound) {
		return nil, apierror.Conflict("sandbox_not_running", "sandbox is %s; only running or paused sandboxes can be extended", sb.Status)
	}
	if err != nil {
		return nil, fmt.Errorf("extending sandbox %s: %w", id, err)
	}
	s.changed(ctx, updated)
	return updated, nil
}

// withinLifetime bounds an expiry by sandbox.max_lifetime from creation: no extension, timeout or
// resume may push a sandbox past it.
func (s *Service) withinLifetime(sb *model.Sandbox, expires time.Time) time.Time {
	if limit := sb.CreatedAt.Add(s.cfg.MaxLifetime); expires.After(limit) {
		return limit
	}
	return expires
}
