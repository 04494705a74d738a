// Package interact is working inside a sandbox: running commands, moving files, reading its
// output and resource use, and attaching terminals. It checks who may do what to which sandbox
// (through the sandbox service), validates input, records activity and live connections, and maps
// the runtime's outcomes to API errors; the runtime does the work.
package interact

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/google/uuid"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/lifecycle"
	"github.com/insien/orchestrator/internal/sandbox/model"
)

// Sandboxes is what the service needs from the sandbox service: tenancy, state, activity and
// live connections.
type Sandboxes interface {
	// Get returns a user's sandbox in any state (404 when it is not theirs).
	Get(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error)
	// Running returns a user's sandbox if it runs (409 naming its state otherwise).
	Running(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error)
	// ExecEnv is the sandbox's own env when its commands must be given it (a warm sandbox's).
	ExecEnv(ctx context.Context, sb *model.Sandbox) (map[string]string, error)
	// Touch records activity (auto-extend).
	Touch(ctx context.Context, sb *model.Sandbox)
	// Connect registers a live connection until release is called (429 when the sandbox has
	// too many).
	Connect(ctx context.Context, sb *model.Sandbox) (release func(), err error)
}

var _ Sandboxes = (*lifecycle.Service)(nil)

// Service works inside sandboxes on behalf of their owners.
type Service struct {
	sandboxes Sandboxes
	rt        runtimes.Interactive
	cfg       config.Sandbox
	log       *zap.Logger
}

// Params are the service's dependencies.
type Params struct {
	fx.In
	Sandboxes *lifecycle.Service
	Runtime   runtimes.Interactive
	Sandbox   config.Sandbox
	Log       *zap.Logger
}

// NewService builds the service.
func NewService(p Params) *Service {
	return &Service{sandboxes: p.Sandboxes, rt: p.Runtime, cfg: p.Sandbox, log: p.Log.Named("sandboxops")}
}

// running returns the caller's running sandbox and records the activity.
func (s *Service) running(ctx context.Context, userID, id uuid.UUID) (*model.Sandbox, error) {
	sb, err := s.sandboxes.Running(ctx, userID, id)
	if err != nil {
		return nil, fmt.Errorf("finding running sandbox %s: %w", id, err)
	}
	s.sandboxes.Touch(ctx, sb)
	return sb, nil
}

// withSandboxEnv is env on top of the sandbox's own env where commands must be given it, so that
// a command sees the same environment in a warm sandbox as in a cold one.
func (s *Service) withSandboxEnv(ctx context.Context, sb *model.Sandbox, env map[string]string) (map[string]string, error) {
	own, err := s.sandboxes.ExecEnv(ctx, sb)
	if err != nil {
		return nil, fmt.Errorf("reading the env of sandbox %s: %w", sb.ID, err)
	}
	if len(own) == 0 {
		return env, nil
	}
	merged := maps.Clone(own)
	maps.Copy(merged, env)
	return merged, nil
}

// container is the runtime name of a sandbox.
func container(sb *model.Sandbox) string { return model.ContainerName(sb.ID) }

// runtimeErr maps the runtime's sentinels to API errors; anything else stays internal, and says
// what failed (op) on which sandbox.
func runtimeErr(sb *model.Sandbox, op string, err error) error {
	var down *runtimes.NotRunningError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &down):
		return apierror.Conflict("sandbox_not_running", "%s", notRunningMessage(sb, down)).WithCause(err)
	case errors.Is(err, runtimes.ErrNotRunning):
		return apierror.Conflict("sandbox_not_running", "sandbox is not running (its state changed meanwhile)").WithCause(err)
	case errors.Is(err, runtimes.ErrNotFound):
		return apierror.Conflict("sandbox_not_running", "the sandbox's container is gone (sandbox is %s)", sb.Status).WithCause(err)
	case errors.Is(err, runtimes.ErrUnavailable):
		return apierror.Unavailable("runtime_unavailable", "the sandbox runtime is unavailable; retry").WithCause(err)
	}
	return fmt.Errorf("%s in sandbox %s: %w", op, sb.ID, err)
}

// notRunningMessage says what the runtime found instead of a running sandbox.
func notRunningMessage(sb *model.Sandbox, down *runtimes.NotRunningError) string {
	switch down.State {
	case runtimes.StatePaused:
		return "sandbox is paused; resume it to work inside it"
	case runtimes.StateCreated:
		return "sandbox has not started yet"
	case runtimes.StateExited:
		if down.OOMKilled {
			return fmt.Sprintf("sandbox stopped: its main process was killed for running out of memory (memory_mb %d)", sb.MemoryMB)
		}
		return fmt.Sprintf("sandbox stopped: its main process exited with status %d", down.ExitCode)
	}
	return "sandbox is not running (its state changed meanwhile)"
}

// fileErr maps file outcomes (missing, wrong type, refused by the sandbox's filesystem) to API
// errors, then the runtime's others. op is what was asked: "read", "write", "remove" or "list".
func fileErr(sb *model.Sandbox, op, p string, err error) error {
	switch {
	case errors.Is(err, runtimes.ErrFileNotFound):
		return withField(apierror.Missing("file_not_found", "%s: no such file or directory", p), "path", err)
	case errors.Is(err, runtimes.ErrIsDirectory):
		return withField(apierror.Conflict("path_is_directory", "%s is a directory", p), "path", err)
	case errors.Is(err, runtimes.ErrNotDirectory) && op == "write":
		return withField(apierror.Conflict("path_not_directory", "a parent of %s is a file, not a directory", p), "path", err)
	case errors.Is(err, runtimes.ErrNotDirectory):
		return withField(apierror.Conflict("path_not_directory", "%s is not a directory", p), "path", err)
	case errors.Is(err, runtimes.ErrDirectoryNotEmpty):
		return withField(apierror.Conflict("directory_not_empty", "%s is a directory that is not empty; add recursive=true to remove it with its content", p), "path", err)
	case errors.Is(err, runtimes.ErrNotRegular):
		return withField(apierror.Conflict("not_regular_file",
			"%s is a device, FIFO or socket; only regular files and directories can be %s here (use exec for anything else)", p, pastTense(op)), "path", err)
	case errors.Is(err, runtimes.ErrReadOnly):
		return withField(apierror.Conflict("read_only_filesystem",
			"%s is on a read-only filesystem in the sandbox; write under /tmp or the work directory instead", p), "path", err)
	case errors.Is(err, runtimes.ErrNoSpace):
		return withField(apierror.Conflict("no_space_left",
			"the sandbox's filesystem holding %s is full; remove files or write elsewhere", p), "path", err)
	case errors.Is(err, runtimes.ErrPermission):
		return withField(apierror.Forbidden("permission_denied",
			"the sandbox's filesystem refused to %s %s (permission denied, or a kernel filesystem such as /proc or /sys)", op, p), "path", err)
	case errors.Is(err, runtimes.ErrTooManyEntries):
		return withField(apierror.Unprocessable("too_many_entries",
			"%s has more than %d entries; list a subdirectory, or use exec (e.g. ls -f | head)", p, runtimes.MaxListEntries), "path", err)
	}
	return runtimeErr(sb, op+" "+p, err)
}

// pastTense of a file operation, for messages.
func pastTense(op string) string {
	switch op {
	case "read":
		return "read"
	case "write":
		return "written"
	case "remove":
		return "removed"
	}
	return "listed"
}

func withField(e *apierror.Error, field string, cause error) *apierror.Error {
	e = e.WithCause(cause)
	e.Field = field
	return e
}
