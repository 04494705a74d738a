package interact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/lifecycle"
	"github.com/insien/orchestrator/internal/sandbox/model"
)

// DefaultExecTimeout applies when an exec names no timeout_seconds (capped by
// sandbox.exec_max_timeout).
const DefaultExecTimeout = 60 * time.Second

// MaxStdinBytes bounds the stdin of one exec (the request body limit applies as well).
const MaxStdinBytes = 1 << 20

// maxArgvBytes bounds argv, env and cwd together, as a kernel's ARG_MAX would.
const maxArgvBytes = 128 << 10

// cmdArgv and execEnv are how exec and the terminal take their cmd, and exec its env.
var (
	cmdArgv = lifecycle.ArgvRules{Field: "cmd", EmptyProgram: "cmd[0], the program, must not be empty"}
	execEnv = lifecycle.EnvRules{BadValue: "env %s contains a NUL byte"}
)

// ExecInput is a command as a client asks for it.
type ExecInput struct {
	Cmd            []string
	Env            map[string]string
	Cwd            string
	TimeoutSeconds *int
	Stdin          *string
}

// Command is a validated command bound to a running sandbox, ready to run.
type Command struct {
	s       *Service
	sb      *model.Sandbox
	spec    runtimes.ExecSpec
	timeout time.Duration
}

// PrepareExec validates the command and checks that the caller's sandbox runs (recording the
// activity), so every refusal is known before any output is written.
func (s *Service) PrepareExec(ctx context.Context, userID, id uuid.UUID, in ExecInput) (*Command, error) {
	spec, timeout, err := s.validateExec(in)
	if err != nil {
		return nil, err
	}
	sb, err := s.running(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if spec.Env, err = s.withSandboxEnv(ctx, sb, spec.Env); err != nil {
		return nil, err
	}
	return &Command{s: s, sb: sb, spec: spec, timeout: timeout}, nil
}

func (s *Service) validateExec(in ExecInput) (runtimes.ExecSpec, time.Duration, error) {
	var spec runtimes.ExecSpec
	if len(in.Cmd) == 0 {
		return spec, 0, apierror.Invalid("cmd", "cmd is required: an argv list such as [\"ls\",\"-l\"]")
	}
	// The three share one budget, as they share the kernel's ARG_MAX: the one whose bytes take
	// the total past it is the one named.
	size, err := lifecycle.CheckArgv(in.Cmd, cmdArgv)
	if err != nil {
		return spec, 0, err
	}
	if size += len(in.Cmd); size > maxArgvBytes { // each argument ends in a NUL
		return spec, 0, apierror.Invalid("cmd", "cmd is %d bytes; cmd, env and cwd together must be at most %d bytes", size, maxArgvBytes)
	}
	envSize, err := lifecycle.CheckEnv(in.Env, execEnv)
	if err != nil {
		return spec, 0, err
	}
	if size += envSize; size > maxArgvBytes {
		return spec, 0, apierror.Invalid("env", "env makes cmd and env %d bytes; cmd, env and cwd together must be at most %d bytes", size, maxArgvBytes)
	}
	if in.Cwd != "" && (!path.IsAbs(in.Cwd) || strings.ContainsRune(in.Cwd, 0)) {
		return spec, 0, apierror.Invalid("cwd", "cwd must be an absolute path")
	}
	if size += len(in.Cwd); size > maxArgvBytes {
		return spec, 0, apierror.Invalid("cwd", "cwd makes cmd, env and cwd %d bytes; together they must be at most %d bytes", size, maxArgvBytes)
	}
	limit := s.cfg.ExecMaxTimeout
	timeout := min(DefaultExecTimeout, limit)
	if in.TimeoutSeconds != nil {
		t := time.Duration(*in.TimeoutSeconds) * time.Second
		if *in.TimeoutSeconds < 1 || t > limit {
			return spec, 0, apierror.Invalid("timeout_seconds", "timeout_seconds must be between 1 and %d", int(limit/time.Second))
		}
		timeout = t
	}
	spec = runtimes.ExecSpec{Cmd: in.Cmd, Env: in.Env, WorkDir: in.Cwd}
	if in.Stdin != nil {
		if len(*in.Stdin) > MaxStdinBytes {
			return spec, 0, apierror.Invalid("stdin", "stdin must be at most %d bytes", MaxStdinBytes)
		}
		spec.Stdin = strings.NewReader(*in.Stdin)
	}
	return spec, timeout, nil
}

// Run runs the command, writing its output to the writers as it arrives (one goroutine at a time;
// at most sandbox.exec_output_limit bytes in all), and registers it as a live connection meanwhile,
// so a long command keeps its sandbox alive. started (may be nil) is called once the command runs,
// before any output: an error returned before it means nothing ran, and the caller may still
// answer with an error status. When ctx ends (the client left) or a writer fails (its reader
// stalled), the command's processes are killed and that error is returned. A non-zero exit status
// is not an error.
func (c *Command) Run(ctx context.Context, stdout, stderr io.Writer, started func()) (runtimes.ExecResult, error) {
	release, err := c.s.sandboxes.Connect(ctx, c.sb)
	if err != nil {
		return runtimes.ExecResult{}, fmt.Errorf("exec: %w", err)
	}
	defer release()
	spec := c.spec
	spec.Started = started
	res, err := c.s.rt.Exec(ctx, container(c.sb), spec, stdout, stderr, c.timeout, c.s.cfg.ExecOutputLimit)
	switch {
	case err != nil && ctx.Err() != nil:
		return res, ctx.Err()
	case errors.Is(err, runtimes.ErrWorkDirNotFound):
		e := apierror.BadRequest("cwd_not_found", "cwd %s does not exist in the sandbox, is not a directory, or the command's user may not enter it", spec.WorkDir).WithCause(err)
		e.Field = "cwd"
		return res, e
	}
	return res, runtimeErr(c.sb, "exec", err)
}

// Collect runs the command like Run and keeps its output in memory: at most
// sandbox.exec_output_limit bytes in all, held in chunks that grow with it (see Output).
func (c *Command) Collect(ctx context.Context) (stdout, stderr *Output, res runtimes.ExecResult, err error) {
	stdout, stderr = &Output{}, &Output{}
	res, err = c.Run(ctx, stdout, stderr, nil)
	return stdout, stderr, res, err
}
