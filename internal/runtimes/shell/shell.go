// Package shell is the sandbox side of runtimes.Interactive for drivers that can start a process
// in a sandbox and little more (the Docker Engine API's exec, the Kubernetes API server's
// pods/exec): running commands with timeouts that kill their whole process tree, moving files,
// and terminals, with nothing inside the sandbox but a POSIX shell and the usual utilities. A
// driver implements Starter; Runner does the rest, the same way for every driver.
package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Starter starts processes inside a driver's sandboxes: the one thing a driver provides.
type Starter interface {
	// Start runs cmd.Argv in sandbox id, attached. op names what the process is for ("exec",
	// "read file", "kill", ...) in errors. A missing sandbox is runtimes.ErrNotFound; one that is
	// paused or stopped is a *runtimes.NotRunningError saying what it is.
	Start(ctx context.Context, op, id string, cmd Command) (Session, error)
	// OOMKilledSince reports whether the kernel's out-of-memory killer struck in sandbox id since
	// t, waiting the moment the report may take to arrive. A query that fails answers false.
	OOMKilledSince(ctx context.Context, id string, t time.Time) bool
}

// Command is a process for Starter.Start to run.
type Command struct {
	Argv []string // Argv[0] is looked up in the sandbox's PATH
	User string   // "uid", "uid:gid" or a name; empty: the sandbox's user
	// Killer marks the kill script (User is empty then): run it with the most power over the
	// sandbox's processes the driver can give (Docker: root, whatever the image's USER; a runtime
	// whose exec cannot choose a user, as Kubernetes': the sandbox's own user).
	Killer     bool
	Env        []string // KEY=VALUE added to the sandbox's environment; never logged
	TTY        bool     // on a pseudo-terminal: one output stream, input echoed
	Stdin      bool     // input is sent with Session.Write; false: the process's stdin is empty
	Rows, Cols uint     // the terminal's initial size, when TTY (0: the driver's default)
}

// Session is a process that Starter.Start started, seen from the orchestrator.
type Session interface {
	// Copy writes the output to stdout and stderr (a TTY's all to stdout) as it arrives, from one
	// goroutine at a time, until it ends (every process holding it open has ended) or Close is
	// called, and returns why it ended: nil at the end of the output, a writer's error as soon as
	// a writer fails (ListDir's bounded buffer relies on it). Called once.
	Copy(stdout, stderr io.Writer) error
	// Write sends input to the process (Command.Stdin).
	Write(p []byte) (int, error)
	// CloseStdin ends the input: the process reads end of file.
	CloseStdin() error
	// Close stops reading the output and sending input (Copy returns, Write fails). It does not
	// stop the process. Safe to call more than once and concurrently.
	Close() error
	// Wait blocks until the process has ended and returns its exit status (128+signal when a
	// signal killed it), or ctx's error when ctx ends first. It works after Close too.
	Wait(ctx context.Context) (int, error)
	// Resize sets a TTY's size in character cells.
	Resize(ctx context.Context, rows, cols uint) error
}

// Options configures a Runner.
type Options struct {
	// Name prefixes errors ("docker: exec in ...") so that they say which driver failed.
	Name string
	// ShortID shortens a sandbox id for errors and logs; nil: ids are shown whole.
	ShortID func(id string) string
	Log     *zap.Logger // nil: no logging
}

// Runner implements the Exec, Terminal, WriteFile, ReadFile, RemoveFile and ListDir methods of
// runtimes.Interactive over a Starter. It is safe for concurrent use.
type Runner struct {
	st      Starter
	name    string
	shortID func(string) string
	log     *zap.Logger
}

// NewRunner builds the Runner of a driver.
func NewRunner(st Starter, opts Options) *Runner {
	if opts.ShortID == nil {
		opts.ShortID = func(id string) string { return id }
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	return &Runner{st: st, name: opts.Name, shortID: opts.ShortID, log: opts.Log}
}

// errorf formats an error of operation op in sandbox id, prefixed with the driver's name.
func (r *Runner) errorf(op, id, format string, args ...any) error {
	return fmt.Errorf("%s: %s in %s: "+format, append([]any{r.name, op, r.shortID(id)}, args...)...)
}

// cleanupTimeout bounds a kill and the wait for the killed process to be gone, counted from the
// moment the kill starts, in nanoseconds.
var cleanupTimeout atomic.Int64

func init() { cleanupTimeout.Store(int64(15 * time.Second)) }

// SetCleanupTimeout changes how long a kill and the wait for the killed process may take (15 s),
// so that a test can show the deadline counts from the kill; it returns the undo.
func SetCleanupTimeout(d time.Duration) (undo func()) {
	old := cleanupTimeout.Swap(int64(d))
	return func() { cleanupTimeout.Store(old) }
}

func cleanup() time.Duration { return time.Duration(cleanupTimeout.Load()) }

// EnvList renders env as KEY=VALUE in a stable order, refusing names and values no process
// environment can hold. Values are never logged or put in errors.
func EnvList(env map[string]string) ([]string, error) {
	keys := make([]string, 0, len(env))
	for k := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("invalid environment variable name %q", k)
		}
		if strings.ContainsRune(env[k], 0) {
			return nil, fmt.Errorf("environment variable %q has a NUL byte in its value", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}

// errOutputTooLarge is a limitedBuffer's refusal of more than it may keep.
var errOutputTooLarge = errors.New("output too large")
