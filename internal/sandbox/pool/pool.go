// Package pool keeps warm pools: sandboxes of configured images started ahead of demand and
// owned by no one, so that a create claims a running one instead of waiting for the engine.
//
// Members live in Postgres (pool_members) and in the runtime (workloads labelled
// runtimes.LabelPool, named after the id they will have as sandboxes). The claim itself is part of
// the sandbox service's create transaction; this package fills the pools, replaces members that
// died or idled too long, and reports their state. Every replica maintains the same pools: fills
// are counted under the capacity lock, so replicas never overshoot a target together.
package pool

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/fx"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/loop"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/repositories"
)

const (
	// checkEvery is how often members are checked against the runtime when nothing wakes the
	// pool: a member that died is replaced within it (a claim checks its member anyway).
	checkEvery = 5 * time.Second
	// startBudget bounds the start of one member.
	startBudget = 2 * time.Minute
	// stuckAfter: a member still starting after this was left by a process that died.
	stuckAfter = startBudget + time.Minute
	// warnEvery spaces out the log lines of a pool that cannot fill.
	warnEvery = time.Minute
	// maxBackoff bounds the wait before a pool that failed to fill tries again.
	maxBackoff = time.Minute
	// refillDelay holds a refill back after a claim: starting a container takes the engine (and,
	// on a small host, the CPU) from the sandbox just handed out, whose first commands would wait.
	refillDelay = time.Second
	// parallelStarts bounds the members being started at once by one replica.
	parallelStarts = 4
)

// Pool maintains the warm pools of one replica.
type Pool struct {
	rows       *repositories.Sandboxes
	rt         runtimes.Runtime
	cfg        config.Sandbox
	targets    map[string]int
	cluster    string
	instance   string
	started    time.Time
	limiter    *rate.Limiter
	wake       chan struct{}
	log        *zap.Logger
	mu         sync.Mutex
	failures   map[string]*failure // by image
	stopLoop   context.CancelFunc
	loopDone   chan struct{}
	startSlots chan struct{}
}

// failure is a pool that could not fill: when to try again and when its problem was last logged.
type failure struct {
	retryAt, warnedAt time.Time
	backoff           time.Duration
}

// Params are the pool's dependencies.
type Params struct {
	fx.In
	Sandboxes *repositories.Sandboxes
	Runtime   runtimes.Runtime
	Sandbox   config.Sandbox
	Runtimes  config.Runtime
	App       config.App
	Log       *zap.Logger
}

// New builds the pools of the configuration; they fill from Start.
func New(p Params) (*Pool, error) {
	targets, err := p.Sandbox.Targets()
	if err != nil {
		return nil, err
	}
	burst := max(1, int(p.Sandbox.WarmPool.RefillPerSecond))
	return &Pool{
		rows: p.Sandboxes, rt: p.Runtime, cfg: p.Sandbox, targets: targets, cluster: p.Runtimes.Cluster,
		instance: p.App.InstanceName(), started: time.Now(),
		limiter: rate.NewLimiter(rate.Limit(p.Sandbox.WarmPool.RefillPerSecond), burst),
		wake:    make(chan struct{}, 1), log: p.Log.Named("pool"), failures: map[string]*failure{},
		startSlots: make(chan struct{}, parallelStarts),
	}, nil
}

// Serves reports whether a sandbox of image running its image's own command can come from a pool.
// A custom command needs a container of its own (a running container's command cannot change).
func (p *Pool) Serves(image string, command []string) bool {
	return p.targets[image] > 0 && len(command) == 0
}

// AnySize reports whether a member of any size can be claimed (the runtime resizes it in place);
// otherwise only members of the requested size can.
func (p *Pool) AnySize() bool { return p.rt.Capabilities().LiveResize }

// diskMB is a new member's disk limit: the default a create that names none gets, where the
// runtime enforces one. A create asking for another cannot claim it (a running workload's storage
// size cannot change) and starts cold.
func (p *Pool) diskMB() *int64 {
	if !p.rt.Capabilities().DiskLimit {
		return nil
	}
	limit := p.cfg.DefaultDiskMB
	return &limit
}

// Wake asks for a maintenance pass after refillDelay (after a claim, or a member's death); calls
// coalesce.
func (p *Pool) Wake() {
	time.AfterFunc(refillDelay, func() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	})
}

// Start runs the maintenance loop, whose first pass fills the pools in the background.
func (p *Pool) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.stopLoop, p.loopDone = cancel, make(chan struct{})
	go func() {
		defer close(p.loopDone)
		loop.EveryOrWake(ctx, checkEvery, p.wake, p.maintain)
	}()
	return nil
}

// Stop ends the loop and waits for members being started, so that none is left half made.
// Members keep running: the next process (or another replica) adopts them from the table.
func (p *Pool) Stop(context.Context) error {
	if p.stopLoop != nil {
		p.stopLoop()
		<-p.loopDone
	}
	return nil
}

// maintain is one pass: remove what must go, then fill up to the targets.
func (p *Pool) maintain(ctx context.Context) {
	if err := p.prune(ctx); err != nil && ctx.Err() == nil {
		p.log.Warn("checking pool members", zap.Error(err))
	}
	if err := p.fill(ctx); err != nil && ctx.Err() == nil {
		p.log.Warn("filling pools", zap.Error(err))
	}
}

// prune takes out of the pool, and removes from the runtime, members left starting by a dead
// process, members idle longer than max_idle_age, members whose workload no longer runs, members
// of pools no longer configured, and members beyond a target that was lowered.
func (p *Pool) prune(ctx context.Context) error {
	pool := p.rows.Pool()
	now := time.Now()
	var gone []repositories.PoolMember
	stuck, err := pool.TakeStuck(ctx, p.instance, p.started, now.Add(-stuckAfter))
	if err != nil {
		return err
	}
	gone = append(gone, stuck...)
	idle, err := pool.TakeIdle(ctx, now.Add(-p.cfg.WarmPool.MaxIdleAge))
	if err != nil {
		return err
	}
	gone = append(gone, idle...)
	dead, err := p.takeDead(ctx)
	if err != nil {
		return err
	}
	gone = append(gone, dead...)
	excess, err := p.takeExcess(ctx)
	if err != nil {
		return err
	}
	gone = append(gone, excess...)
	p.Remove(ctx, gone)
	return nil
}

// takeDead takes ready members whose workload is missing or not running. Only members ready
// before the runtime was listed are judged, so one made meanwhile is not taken for missing.
func (p *Pool) takeDead(ctx context.Context) ([]repositories.PoolMember, error) {
	listedAt := time.Now()
	workloads, err := p.rt.List(ctx, map[string]string{runtimes.LabelCluster: p.cluster, runtimes.LabelPool: "true"})
	if err != nil {
		return nil, fmt.Errorf("listing pool workloads: %w", err)
	}
	running := map[string]bool{}
	for _, w := range workloads {
		running[w.Name] = w.State == runtimes.StateRunning
	}
	members, err := p.rows.Pool().Members(ctx)
	if err != nil {
		return nil, err
	}
	var dead []uuid.UUID
	for _, m := range members {
		if m.Status == repositories.MemberReady && m.ReadyAt.Before(listedAt) && !running[model.ContainerName(m.ID)] {
			dead = append(dead, m.ID)
		}
	}
	if len(dead) > 0 {
		p.log.Info("replacing pool members that no longer run", zap.Int("members", len(dead)))
	}
	return p.rows.Pool().TakeIDs(ctx, dead)
}

// takeExcess takes the members of images whose pool shrank or went away.
func (p *Pool) takeExcess(ctx context.Context) ([]repositories.PoolMember, error) {
	byImage, err := countByImage(ctx, p.rows)
	if err != nil {
		return nil, err
	}
	var out []repositories.PoolMember
	for image, c := range byImage {
		if extra := c.ready + c.starting - p.targets[image]; extra > 0 && c.ready > 0 {
			taken, err := p.rows.Pool().TakeExcess(ctx, image, min(extra, c.ready))
			if err != nil {
				return nil, err
			}
			out = append(out, taken...)
		}
	}
	return out, nil
}

// Remove removes the workloads of members already taken out of the pool (by a prune, or by a
// claim that found them dead).
func (p *Pool) Remove(ctx context.Context, members []repositories.PoolMember) {
	for _, m := range members {
		if err := p.rt.Remove(ctx, model.ContainerName(m.ID)); err != nil {
			// The row is gone, so the reconciler removes the orphan workload on its next pass.
			p.log.Warn("removing a pool member", zap.Stringer("member", m.ID), zap.Error(err))
		}
	}
}

// fill starts members for every pool below its target, within the refill rate and the instance
// capacity. Members of different images start in parallel; each is reserved under the capacity
// lock first, so that replicas filling at once never start more than a target together.
func (p *Pool) fill(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, image := range slices.Sorted(maps.Keys(p.targets)) {
		if !p.mayTry(image) {
			continue
		}
		for {
			if err := p.limiter.Wait(ctx); err != nil {
				return nil // stopping
			}
			member, err := p.reserve(ctx, image)
			if err != nil {
				return err
			}
			if member == nil {
				break
			}
			select {
			case p.startSlots <- struct{}{}:
			case <-ctx.Done():
				p.abandon(context.WithoutCancel(ctx), *member)
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-p.startSlots }()
				p.startMember(ctx, *member)
			}()
		}
	}
	return nil
}

// reserve records one more starting member of image when its pool is below target and the
// instance has room; nil when it needs none or there is no room.
func (p *Pool) reserve(ctx context.Context, image string) (*repositories.PoolMember, error) {
	var member *repositories.PoolMember
	err := p.rows.InTx(ctx, func(ctx context.Context, rows *repositories.Sandboxes) error {
		if err := rows.LockCapacity(ctx); err != nil {
			return err
		}
		byImage, err := countByImage(ctx, rows)
		if err != nil {
			return err
		}
		if c := byImage[image]; c.ready+c.starting >= p.targets[image] {
			return nil
		}
		used, err := rows.CountCapacity(ctx)
		if err != nil {
			return err
		}
		if used >= p.cfg.MaxPerInstance {
			return nil // users' sandboxes come first; the pool fills when they end
		}
		m := repositories.PoolMember{ID: uuid.New(), Image: image, CPU: p.cfg.DefaultCPU,
			MemoryMB: p.cfg.DefaultMemoryMB, DiskMB: p.diskMB(), Instance: p.instance}
		if err := rows.Pool().Reserve(ctx, []repositories.PoolMember{m}); err != nil {
			return err
		}
		member = &m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reserving a member of the %s pool: %w", image, err)
	}
	return member, nil
}

// startMember creates and starts a reserved member's workload, hardened like any sandbox's (the
// driver applies the same hardening to every Spec), and marks it ready.
func (p *Pool) startMember(ctx context.Context, m repositories.PoolMember) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startBudget)
	defer cancel()
	name := model.ContainerName(m.ID)
	id, err := p.rt.Create(ctx, runtimes.Spec{
		Name: name, Image: m.Image, CPU: m.CPU, MemoryMB: m.MemoryMB, DiskMB: model.SpecDiskMB(m.DiskMB), PidsLimit: p.cfg.PidsLimit,
		Labels: model.RuntimeLabels(p.cluster, p.instance, m.ID, uuid.Nil),
	})
	if err == nil {
		err = p.rt.Start(ctx, id)
	}
	if err == nil {
		err = p.rows.Pool().MarkReady(ctx, m.ID, id)
		if errors.Is(err, repositories.ErrNotFound) {
			err = errors.New("the member was taken out of the pool while it started")
		}
	}
	if err != nil {
		p.failed(ctx, m.Image, err)
		p.abandon(ctx, m)
		return
	}
	p.succeeded(ctx, m.Image)
}

// abandon takes a member that will not be ready out of the pool and removes its workload.
func (p *Pool) abandon(ctx context.Context, m repositories.PoolMember) {
	taken, err := p.rows.Pool().TakeIDs(ctx, []uuid.UUID{m.ID})
	if err != nil {
		// Left starting: the next pass of any replica takes it once it is stuck.
		p.log.Warn("taking a failed pool member out of the pool", zap.Stringer("member", m.ID), zap.Error(err))
		return
	}
	p.Remove(ctx, taken)
}

// mayTry reports whether image's pool may try to fill now: after a failure it waits, longer
// after each failure in a row.
func (p *Pool) mayTry(image string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.failures[image]
	return f == nil || !time.Now().Before(f.retryAt)
}

// failed records why image's pool could not fill (for pool status), backs off, and logs at most
// once per warnEvery. Creates are not affected: with no member ready they start cold.
func (p *Pool) failed(ctx context.Context, image string, cause error) {
	p.mu.Lock()
	f := p.failures[image]
	if f == nil {
		f = &failure{}
		p.failures[image] = f
	}
	f.backoff = min(max(2*f.backoff, checkEvery), maxBackoff)
	now := time.Now()
	f.retryAt = now.Add(f.backoff)
	warn := now.Sub(f.warnedAt) >= warnEvery
	if warn {
		f.warnedAt = now
	}
	p.mu.Unlock()
	if warn {
		p.log.Warn("a warm pool cannot fill; creates of its image start cold meanwhile",
			zap.String("image", image), zap.Error(cause))
	}
	if err := p.rows.Pool().RecordFailure(ctx, image, cause.Error()); err != nil {
		p.log.Debug("recording a pool failure", zap.Error(err))
	}
}

// succeeded forgets image's failure (this replica's, or one recorded by any) once a member of it
// started.
func (p *Pool) succeeded(ctx context.Context, image string) {
	p.mu.Lock()
	delete(p.failures, image)
	p.mu.Unlock()
	if err := p.rows.Pool().ClearFailure(ctx, image); err != nil {
		p.log.Debug("clearing a pool failure", zap.Error(err))
	}
}
