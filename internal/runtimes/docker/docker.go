// Package docker runs sandboxes as hardened containers on a Docker engine, implementing
// runtimes.Runtime so the orchestration code never sees a Docker type.
package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/shell"
)

// engineIdleConns is how many idle connections to the engine the client keeps.
const engineIdleConns = 32

// Options configures the driver. Zero values get the defaults documented on each field.
type Options struct {
	Host         string        // DOCKER_HOST-style address; empty: the client default (DOCKER_* env, then the local socket)
	AllowNetwork bool          // false: sandboxes get NetworkMode "none"
	NetworkMode  string        // used only when AllowNetwork; default "bridge"
	ReadOnlyRoot bool          // read-only image filesystem; /tmp and WorkDir become tmpfs mounts
	TmpfsSizeMB  int64         // size of each tmpfs mount when ReadOnlyRoot; default: runtime.tmpfs_size_mb's
	WorkDir      string        // default /workspace (Spec.WorkDir wins when set); a tmpfs when ReadOnlyRoot
	OCIRuntime   string        // e.g. "runsc"; empty: the engine default
	StopGrace    time.Duration // SIGTERM-to-SIGKILL delay when Stop is given none; default: runtime.stop_grace's
	PullImages   bool          // pull a missing image once; false: a missing image is ErrImageNotFound
}

// Runtime is the Docker implementation of runtimes.Runtime. It is safe for concurrent use.
type Runtime struct {
	*shell.Runner // exec, files and terminals, through starter
	cli           *client.Client
	opts          Options
	log           *zap.Logger
	disk          diskSupport
}

var _ runtimes.Runtime = (*Runtime)(nil)

// New builds a driver for the engine at opts.Host. It does not contact the engine: call Ping to
// check it is reachable.
func New(opts Options, log *zap.Logger) (*Runtime, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if opts.NetworkMode == "" {
		opts.NetworkMode = defaultNetworkMode
	}
	if opts.WorkDir == "" {
		opts.WorkDir = runtimes.DefaultWorkDir
	}
	if opts.TmpfsSizeMB == 0 {
		opts.TmpfsSizeMB = defaults.Runtime.TmpfsSizeMB
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = defaults.Runtime.StopGrace
	}
	switch {
	case opts.TmpfsSizeMB < 0:
		return nil, fmt.Errorf("docker: TmpfsSizeMB must be positive, got %d", opts.TmpfsSizeMB)
	case opts.StopGrace < 0:
		return nil, fmt.Errorf("docker: StopGrace must be positive, got %s", opts.StopGrace)
	case opts.AllowNetwork && opts.NetworkMode == "host":
		// Host networking shares the host's interfaces and loopback services with the sandbox.
		return nil, errors.New(`docker: NetworkMode "host" is not allowed for sandboxes`)
	}

	// The client's own transport keeps two idle connections to the engine: a batch of warm
	// claims checks its members at once and dialled most of its connections anew every time. The
	// host is applied after it (WithHost configures the transport for the socket). HTTP/1 only:
	// the engine speaks it, and a transport that may try HTTP/2 gains a TLS config when the
	// client clones it, which the client takes for https.
	engine := &http.Transport{MaxIdleConns: engineIdleConns, MaxIdleConnsPerHost: engineIdleConns, IdleConnTimeout: 30 * time.Second,
		Protocols: new(http.Protocols)}
	engine.Protocols.SetHTTP1(true)
	clientOpts := []client.Opt{client.WithHTTPClient(&http.Client{CheckRedirect: client.CheckRedirect, Transport: engine}), client.FromEnv}
	host := opts.Host
	if host == "" {
		host = cmp.Or(os.Getenv(client.EnvOverrideHost), client.DefaultDockerHost)
	}
	cli, err := client.New(append(clientOpts, client.WithHost(host))...)
	if err != nil {
		return nil, fmt.Errorf("docker: client for %q: %w", host, err)
	}
	r := &Runtime{cli: cli, opts: opts, log: log.Named("docker")}
	r.Runner = shell.NewRunner(starter{r}, shell.Options{Name: "docker", ShortID: shortID, Log: r.log})
	return r, nil
}

// Close releases the client's idle connections.
func (r *Runtime) Close() error { return r.cli.Close() }

// Name identifies the driver in logs and health checks.
func (r *Runtime) Name() string { return "docker" }

// Capabilities: the engine freezes a container's cgroup, so pause and resume work, and changes
// its limits in place, so a pool member of any size can be claimed. A disk limit needs a storage
// driver with per-container sizes (see diskLimit); the first call may ask the engine.
func (r *Runtime) Capabilities() runtimes.Capabilities {
	return runtimes.Capabilities{Pause: true, ExecUser: true, LogStreams: true, LiveResize: true, Volumes: true,
		DiskLimit: r.diskLimit()}
}

// Ping checks that the engine answers; a failure is ErrUnavailable.
func (r *Runtime) Ping(ctx context.Context) error {
	if _, err := r.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		// Any ping failure means the engine cannot serve us, whatever the transport said.
		return fmt.Errorf("docker: ping %s: %w: %w", r.cli.DaemonHost(), runtimes.ErrUnavailable, err)
	}
	return nil
}

// Create makes (but does not start) a hardened container for spec. A create retried after a
// crash finds the container it made before, recognised by name and sandbox label, and returns its id.
func (r *Runtime) Create(ctx context.Context, spec runtimes.Spec) (string, error) {
	cfg, hc, err := r.containerConfig(spec)
	if err != nil {
		return "", err
	}
	if spec.DiskMB > 0 && !r.diskLimit() {
		return "", fmt.Errorf("docker: create %s: a disk limit: %w", spec.Name, runtimes.ErrNotSupported)
	}
	create := func() (client.ContainerCreateResult, error) {
		return r.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: spec.Name, Config: cfg, HostConfig: hc})
	}

	res, err := create()
	if cerrdefs.IsNotFound(err) {
		// Create answers 404 for a missing image (and for a missing network); find out which.
		if err := r.ensureImage(ctx, spec.Image); err != nil {
			return "", err
		}
		res, err = create()
		if cerrdefs.IsNotFound(err) {
			// The image is there, so something else named in the spec (a network) is missing:
			// that is a configuration error, not a missing workload.
			return "", fmt.Errorf("docker: create %s: %v", spec.Name, err)
		}
	}
	if cerrdefs.IsConflict(err) {
		return r.adoptExisting(ctx, spec)
	}
	if err != nil && spec.DiskMB > 0 && r.refusedSize(err) {
		return "", fmt.Errorf("docker: create %s: a disk limit: %w: %w", spec.Name, runtimes.ErrNotSupported, err)
	}
	if cerrdefs.IsInvalidArgument(err) {
		// The engine checks limits against the host (e.g. "Range of CPUs is from 0.01 to 2.00").
		return "", fmt.Errorf("docker: create %s: %w: %w", spec.Name, runtimes.ErrSpecRefused, err)
	}
	if err != nil {
		return "", mapErr("create", spec.Name, err)
	}
	for _, w := range res.Warnings {
		r.log.Warn("engine warning on create", zap.String("name", spec.Name), zap.String("warning", w))
	}
	r.log.Debug("created container", zap.String("name", spec.Name), zap.String("id", res.ID),
		zap.String("image", spec.Image), zap.Int("env_vars", len(spec.Env)))
	return res.ID, nil
}

// adoptExisting returns the id of the container already holding spec.Name if it belongs to the same
// sandbox, so a retried create is idempotent; a name held by anything else is an error.
func (r *Runtime) adoptExisting(ctx context.Context, spec runtimes.Spec) (string, error) {
	res, err := r.cli.ContainerInspect(ctx, spec.Name, client.ContainerInspectOptions{})
	if err != nil {
		return "", mapErr("create: inspect existing", spec.Name, err)
	}
	want := spec.Labels[runtimes.LabelSandboxID]
	var got string
	if res.Container.Config != nil {
		got = res.Container.Config.Labels[runtimes.LabelSandboxID]
	}
	if want == "" || got != want {
		return "", fmt.Errorf("docker: create %q: name is taken by container %s of another sandbox (%q)",
			spec.Name, shortID(res.Container.ID), got)
	}
	r.log.Info("create found existing container", zap.String("name", spec.Name), zap.String("id", res.Container.ID))
	return res.Container.ID, nil
}

// ensureImage returns nil if image is present or was pulled, else ErrImageNotFound naming it.
func (r *Runtime) ensureImage(ctx context.Context, image string) error {
	_, err := r.cli.ImageInspect(ctx, image)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return mapErr("inspect image", image, err)
	}
	if !r.opts.PullImages {
		return fmt.Errorf("docker: image %q is not present on the engine and pulling is disabled: %w", image, runtimes.ErrImageNotFound)
	}
	r.log.Info("pulling missing image", zap.String("image", image))
	if err := r.pull(ctx, image); err != nil {
		if client.IsErrConnectionFailed(err) || ctx.Err() != nil {
			return mapErr("pull", image, err)
		}
		// Whatever the registry said (unknown repository, denied, unreachable), the image cannot
		// be had, which is what callers need to know.
		return fmt.Errorf("docker: pull image %q: %w: %w", image, runtimes.ErrImageNotFound, err)
	}
	return nil
}

func (r *Runtime) pull(ctx context.Context, image string) error {
	resp, err := r.cli.ImagePull(ctx, image, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	// Pull errors arrive in the progress stream, not as an HTTP status: Wait reads it to the end.
	return resp.Wait(ctx)
}

// Start runs a created container; starting a running one is a no-op.
func (r *Runtime) Start(ctx context.Context, id string) error {
	if id == "" {
		return emptyID("start")
	}
	_, err := r.cli.ContainerStart(ctx, id, client.ContainerStartOptions{})
	return mapErr("start", id, err)
}

// Stop sends SIGTERM and, after grace (Options.StopGrace when grace <= 0), SIGKILL. Stopping a
// stopped container is a no-op.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	if id == "" {
		return emptyID("stop")
	}
	if grace <= 0 {
		grace = r.opts.StopGrace
	}
	timeout := int((grace + time.Second - 1) / time.Second) // the API takes whole seconds: round up
	// The engine answers 304 Not Modified for an already stopped container, which is not an error.
	_, err := r.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &timeout})
	return mapErr("stop", id, err)
}

// Remove force-removes a container with its anonymous volumes; a missing container is success.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	_, err := r.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress"):
		// A concurrent remove of the same container is under way: the outcome is the one asked for.
		return nil
	}
	return mapErr("remove", id, err)
}

// Pause freezes every process of a running container; pausing a paused container is a no-op.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	return r.setPaused(ctx, id, true)
}

// Resume thaws a paused container; resuming a running container is a no-op.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	return r.setPaused(ctx, id, false)
}

// setPaused moves a container to the paused (or running) state. It reads the state first so that
// a repeated call is a no-op, and re-reads it after a conflict so a concurrent caller that got
// there first does not turn into an error.
func (r *Runtime) setPaused(ctx context.Context, id string, paused bool) error {
	op, from, to := "resume", runtimes.StatePaused, runtimes.StateRunning
	if paused {
		op, from, to = "pause", runtimes.StateRunning, runtimes.StatePaused
	}
	if id == "" {
		return emptyID(op)
	}
	for attempt := 0; ; attempt++ {
		info, err := r.Inspect(ctx, id)
		if err != nil {
			return err
		}
		switch info.State {
		case to:
			return nil
		case from:
		default:
			return fmt.Errorf("docker: %s %s: container is %s: %w", op, shortID(id), info.State, runtimes.ErrNotRunning)
		}
		if paused {
			_, err = r.cli.ContainerPause(ctx, id, client.ContainerPauseOptions{})
		} else {
			_, err = r.cli.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
		}
		if err == nil {
			return nil
		}
		if !cerrdefs.IsConflict(err) || attempt > 0 {
			return mapErr(op, id, err)
		}
	}
}

// Inspect reports a container's state, exit status and labels.
func (r *Runtime) Inspect(ctx context.Context, id string) (runtimes.Info, error) {
	if id == "" {
		return runtimes.Info{}, emptyID("inspect")
	}
	res, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return runtimes.Info{}, mapErr("inspect", id, err)
	}
	c := res.Container
	info := runtimes.Info{
		ID:    c.ID,
		Name:  strings.TrimPrefix(c.Name, "/"),
		State: runtimes.StateUnknown,
	}
	if c.Config != nil {
		info.Labels = c.Config.Labels
	}
	if s := c.State; s != nil {
		info.State = mapState(s.Status)
		info.ExitCode = s.ExitCode
		info.Error = s.Error
		if s.OOMKilled && info.Error == "" {
			info.Error = "out of memory (OOM killed)"
		}
		info.OOMKilled = info.State == runtimes.StateExited && killedByOOM(s.OOMKilled, s.ExitCode)
		info.StartedAt = parseTime(s.StartedAt)
		info.FinishedAt = parseTime(s.FinishedAt)
	}
	return info, nil
}

// List reports every container managed by the orchestrator that carries all of labels, stopped
// ones included. The engine's list gives no times, exit code or error: those stay zero; call
// Inspect for them.
func (r *Runtime) List(ctx context.Context, labels map[string]string) ([]runtimes.Info, error) {
	f := client.Filters{}
	// Always scoped to our own containers, so an empty filter never reaches unrelated workloads.
	f.Add("label", runtimes.LabelManagedBy+"=true")
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	res, err := r.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, mapErr("list", "", err)
	}
	out := make([]runtimes.Info, 0, len(res.Items))
	for _, c := range res.Items {
		var name string
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, runtimes.Info{ID: c.ID, Name: name, State: mapState(c.State), Labels: c.Labels})
	}
	return out, nil
}

// mapState folds the engine's seven states into the driver-neutral five.
func mapState(s container.ContainerState) runtimes.State {
	switch s {
	case container.StateCreated:
		return runtimes.StateCreated
	case container.StateRunning:
		return runtimes.StateRunning
	case container.StatePaused:
		return runtimes.StatePaused
	case container.StateExited, container.StateDead, container.StateRemoving:
		// None of these will run again: to the orchestrator they are finished.
		return runtimes.StateExited
	default: // restarting (never with our restart policy) or something newer than this code
		return runtimes.StateUnknown
	}
}

// parseTime reads the engine's RFC 3339 timestamps; its "never" (year 1) becomes the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// mapErr translates engine errors into the runtimes sentinels, keeping the engine's message.
func mapErr(op, id string, err error) error {
	if err == nil {
		return nil
	}
	what := op
	if id != "" {
		what = op + " " + shortID(id)
	}
	switch {
	case client.IsErrConnectionFailed(err), cerrdefs.IsUnavailable(err):
		return fmt.Errorf("docker: %s: %w: %w", what, runtimes.ErrUnavailable, err)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("docker: %s: %w: %w", what, runtimes.ErrNotFound, err)
	default:
		return fmt.Errorf("docker: %s: %w", what, err)
	}
}

func emptyID(op string) error {
	return fmt.Errorf("docker: %s: empty id: %w", op, runtimes.ErrNotFound)
}

// shortID keeps log lines and errors readable; names pass through unchanged.
func shortID(id string) string {
	if len(id) == 64 && strings.Trim(id, "0123456789abcdef") == "" {
		return id[:12]
	}
	return id
}
