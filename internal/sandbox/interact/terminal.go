package interact

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/lifecycle"
	"github.com/insien/orchestrator/internal/sandbox/model"
)

// Terminal sizes: the default, and the bounds a client may ask for.
const (
	DefaultRows, DefaultCols = 24, 80
	MaxTerminalSize          = 1000
)

// TerminalInput is a terminal as a client asks for it.
type TerminalInput struct {
	Cmd        []string // argv; empty: sh
	Rows, Cols uint     // 0: the default
}

// Session is an open terminal that counts as a live connection of its sandbox until Close.
type Session struct {
	runtimes.Terminal
	release func()
	once    sync.Once
}

// Close kills the session's processes if they still run and ends the live connection.
func (s *Session) Close() error {
	var err error
	s.once.Do(func() {
		if cerr := s.Terminal.Close(); cerr != nil {
			err = fmt.Errorf("closing a terminal: %w", cerr)
		}
		s.release()
	})
	return err
}

// CheckTerminalSize accepts 1..MaxTerminalSize cells each way.
func CheckTerminalSize(rows, cols uint) error {
	if rows < 1 || rows > MaxTerminalSize || cols < 1 || cols > MaxTerminalSize {
		return apierror.Invalid("rows", "rows and cols must be between 1 and %d", MaxTerminalSize)
	}
	return nil
}

// TerminalRequest is a validated terminal for a running sandbox, ready to open.
type TerminalRequest struct {
	s   *Service
	sb  *model.Sandbox
	in  TerminalInput
	env map[string]string
}

// PrepareTerminal validates the request and checks that the caller's sandbox runs, so every
// refusal is known before the connection is upgraded.
func (s *Service) PrepareTerminal(ctx context.Context, userID, id uuid.UUID, in TerminalInput) (*TerminalRequest, error) {
	if len(in.Cmd) == 0 {
		in.Cmd = []string{"sh"}
	}
	if _, err := lifecycle.CheckArgv(in.Cmd, cmdArgv); err != nil {
		return nil, err
	}
	if in.Rows == 0 {
		in.Rows = DefaultRows
	}
	if in.Cols == 0 {
		in.Cols = DefaultCols
	}
	if err := CheckTerminalSize(in.Rows, in.Cols); err != nil {
		return nil, err
	}
	sb, err := s.running(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	env, err := s.withSandboxEnv(ctx, sb, map[string]string{"TERM": "xterm-256color"})
	if err != nil {
		return nil, err
	}
	return &TerminalRequest{s: s, sb: sb, in: in, env: env}, nil
}

// Open starts the command on a pseudo-terminal; ctx bounds the start only.
func (r *TerminalRequest) Open(ctx context.Context) (*Session, error) {
	release, err := r.s.sandboxes.Connect(ctx, r.sb)
	if err != nil {
		return nil, fmt.Errorf("opening a terminal: %w", err)
	}
	spec := runtimes.ExecSpec{Cmd: r.in.Cmd, Env: r.env}
	term, err := r.s.rt.Terminal(ctx, container(r.sb), spec, r.in.Rows, r.in.Cols)
	if err != nil {
		release()
		return nil, runtimeErr(r.sb, "opening a terminal", err)
	}
	return &Session{Terminal: term, release: release}, nil
}
