package sandboxops

import (
	"context"
	"io"
	"path"

	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/apierror"
	"github.com/insien/orchestrator/repositories"
	"github.com/insien/orchestrator/runtimes"
	"github.com/insien/orchestrator/sandboxes"
)

// DefaultExecTimeout applies when an exec names no timeout_seconds (capped by
// sandbox.exec_max_timeout).
const DefaultExecTimeout = 60 * time.Second

// MaxStdinBytes bounds the stdin of one exec (the request body limit applies as well).
const MaxStdinBytes = 1 << 20

// maxArgvBytes bounds argv, env and cwd together, as a kernel's ARG_MAX would.
const maxArgvBytes = 128 << 10

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
	sb      *repositories.Sandbox
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
	return &Command{s: s, sb: sb, spec: spec, timeout: timeout}, nil
}

func (s *Service) validateExec(in ExecInput) (runtimes.ExecSpec, time.Duration, error) {
	var spec runtimes.ExecSpec
	if len(in.Cmd) == 0 {
		return spec, 0, apierror.Invalid("cmd", "cmd is required: an argv list such as [\"ls\",\"-l\"]")
	}
	if in.Cmd[0] == "" {
		return spec, 0, apierror.Invalid("cmd", "cmd[0], the program, must not be empty")
	}
	size := 0
	for i, arg := range in.Cmd {
		if strings.ContainsRune(arg, 0) {
			return spec, 0, apierror.Invalid("cmd", "cmd[%d] contains a NUL byte", i)
		}
		size += len(arg) + 1
	}
	for name, value := range in.Env {
		if !sandboxes.ValidEnvName(name) {
			return spec, 0, apierror.Invalid("env", "env name %q is not a POSIX name ([A-Za-z_][A-Za-z0-9_]*)", name)
		}
		if strings.ContainsRune(value, 0) {
			return spec, 0, apierror.Invalid("env", "env %s contains a NUL byte", name)
		}
		size += len(name) + len(value) + 2
	}
	if in.Cwd != "" && (!path.IsAbs(in.Cwd) || strings.ContainsRune(in.Cwd, 0)) {
		return spec, 0, apierror.Invalid("cwd", "cwd must be an absolute path")
	}
	if size += len(in.Cwd); size > maxArgvBytes {
		return spec, 0, apierror.Invalid("cmd", "cmd, env and cwd together must be at most %d bytes", maxArgvBytes)
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
// so a long command keeps its sandbox alive. When ctx ends (the client left) the command's
// processes are killed and ctx's error is returned. A non-zero exit status is not an error.
func (c *Command) Run(ctx context.Context, stdout, stderr io.Writer) (runtimes.ExecResult, error) {
	release, err := c.s.sandboxes.Connect(ctx, c.sb)
	if err != nil {
		return runtimes.ExecResult{}, err
	}
	defer release()
	res, err := c.s.rt.Exec(ctx, container(c.sb), c.spec, stdout, stderr, c.timeout, c.s.cfg.ExecOutputLimit)
	if err != nil && ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, runtimeErr(c.sb, err)
}
