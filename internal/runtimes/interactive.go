package runtimes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// Errors the Interactive methods return so callers (HTTP handlers) can map outcomes to status codes
// without knowing the driver. They are wrapped: test with errors.Is.
var (
	ErrFileNotFound      = errors.New("runtime: no such file or directory")
	ErrIsDirectory       = errors.New("runtime: is a directory")
	ErrNotDirectory      = errors.New("runtime: not a directory")
	ErrDirectoryNotEmpty = errors.New("runtime: directory not empty")
	// ErrNotRunning: the workload exists but is paused, stopped or not yet started, so nothing can
	// run inside it. A driver that could read the state returns a *NotRunningError, which is one.
	ErrNotRunning = errors.New("runtime: workload is not running")
	// ErrNotRegular: the path is a device, FIFO or socket, which file operations refuse (reading
	// /dev/zero would never end, reading a FIFO would block).
	ErrNotRegular = errors.New("runtime: not a regular file")
	// ErrReadOnly: the sandbox's filesystem at that path is mounted read-only (EROFS).
	ErrReadOnly = errors.New("runtime: read-only file system")
	// ErrPermission: the sandbox's kernel refused the change (EACCES, EPERM, or a pseudo filesystem
	// such as /proc or /sys that does not let files be created or removed).
	ErrPermission = errors.New("runtime: permission denied")
	// ErrNoSpace: the sandbox's filesystem is full (ENOSPC, EDQUOT).
	ErrNoSpace = errors.New("runtime: no space left on device")
	// ErrTooManyEntries: a directory has more entries than ListDir returns (MaxListEntries).
	ErrTooManyEntries = errors.New("runtime: too many directory entries")
	// ErrWorkDirNotFound: ExecSpec.WorkDir does not exist, is not a directory, or the command's user
	// may not enter it; the command did not run.
	ErrWorkDirNotFound = errors.New("runtime: work directory not found")
)

// NotRunningError is ErrNotRunning with what the driver learnt about the workload, so that a
// client can be told what is true (paused, or stopped because its main process exited or was
// killed for lack of memory) rather than a guess.
type NotRunningError struct {
	State     State
	ExitCode  int  // the main process's exit status, when State is StateExited
	OOMKilled bool // the main process was killed by the kernel's out-of-memory killer
}

func (e *NotRunningError) Error() string {
	switch {
	case e.OOMKilled:
		return fmt.Sprintf("%v: %s, its main process was killed for lack of memory", ErrNotRunning, e.State)
	case e.State == StateExited:
		return fmt.Sprintf("%v: %s, its main process exited with status %d", ErrNotRunning, e.State, e.ExitCode)
	}
	return fmt.Sprintf("%v: %s", ErrNotRunning, e.State)
}

// Is makes errors.Is(err, ErrNotRunning) hold.
func (e *NotRunningError) Is(target error) bool { return target == ErrNotRunning }

// Bounds on what the file operations return, so that memory stays bounded whatever a sandbox holds.
const (
	// PseudoFileLimit bounds ReadFile of a kernel pseudo file (/proc, /sys, cgroup files): the
	// kernel reports no size for them (0, or 4096 for sysfs), so they are streamed up to this many
	// bytes instead of the size stat reports.
	PseudoFileLimit = 1 << 20
	// MaxListEntries bounds ListDir: a larger directory is ErrTooManyEntries.
	MaxListEntries = 100_000
)

// ExecSpec describes one command to run inside a running sandbox.
type ExecSpec struct {
	Cmd     []string          // argv; Cmd[0] is looked up in the sandbox's PATH. Required.
	Env     map[string]string // added to the sandbox's environment; values are never logged
	WorkDir string            // empty: the sandbox's working directory
	Stdin   io.Reader         // nil: the command's stdin is empty (EOF at once)
	// TTY runs the command on a pseudo-terminal: stderr is merged into stdout, lines end in \r\n,
	// and Stdin is typed in (echoed back; its end is not an end of file: include ^D, 0x04, for that).
	TTY  bool
	User string // "uid", "uid:gid" or a name known to the image; empty: the sandbox's user
	// Started, when set, is called once the command runs (WorkDir was entered), before any of its
	// output is written and from the goroutine that writes it. A caller that must answer before
	// the output (an HTTP status) can wait for it: an error known before it (ErrWorkDirNotFound,
	// ErrNotRunning) means nothing ran.
	Started func()
}

// ExecResult is how a command ended.
type ExecResult struct {
	// ExitCode is the command's exit status. A command killed by a signal reports 128+signal, so a
	// command killed on timeout or cancellation normally reports 137 (SIGKILL); -1 when the driver
	// could not learn the status.
	ExitCode  int
	TimedOut  bool // the timeout passed and the command's processes were killed
	Truncated bool // output beyond maxOutput was discarded
	// OOMKilled: the command was killed (ExitCode 137) by the kernel's out-of-memory killer, not by
	// the orchestrator: the sandbox reached its memory limit while it ran.
	OOMKilled bool
	Duration  time.Duration // from start to the end of the command
}

// FileInfo describes one file in a sandbox.
type FileInfo struct {
	Name string // base name
	Path string // the path as asked for (ReadFile) or joined with the directory (ListDir)
	// Size in bytes; for a symbolic link (ListDir only), the length of its target. ReadFile reports
	// -1 for a kernel pseudo file, whose length is only known once read (see PseudoFileLimit).
	Size       int64
	Mode       fs.FileMode // permission bits plus type bits (fs.ModeDir, fs.ModeSymlink, ...)
	IsDir      bool
	ModifiedAt time.Time // second precision
}

// LogOptions selects which part of a sandbox's output (its main process's stdout and stderr) to read.
type LogOptions struct {
	Tail       int       // number of last lines; < 0: all of them; 0: none (useful with Follow)
	Since      time.Time // zero: from the start
	Follow     bool      // keep streaming new output until ctx ends or the sandbox stops
	Timestamps bool      // prefix each line with its RFC 3339 timestamp
}

// Stats is one sample of a sandbox's resource use.
type Stats struct {
	// CPUPercent is the share of one CPU used over the sampling interval (about one second), as
	// `docker stats` reports it: 150 means one and a half cores.
	CPUPercent       float64
	MemoryBytes      uint64 // in use, page cache that the kernel can reclaim excluded
	MemoryLimitBytes uint64
	Pids             uint64 // processes and threads
	At               time.Time
}

// Terminal is an interactive session on a pseudo-terminal inside a sandbox. Read returns what the
// terminal prints (stdout and stderr merged, with terminal control sequences); Write types into it.
type Terminal interface {
	io.ReadWriteCloser // Close kills the session's processes if they still run and releases the connection
	// Resize tells the terminal its size in character cells, so full-screen programs redraw to fit.
	Resize(ctx context.Context, rows, cols uint) error
	// Wait blocks until the session's command ends and returns its exit status.
	Wait(ctx context.Context) (exitCode int, err error)
}

// Interactive is what working inside a running sandbox needs from a runtime: running commands,
// moving files, reading output and usage, and attaching a terminal. Methods that run something in
// the sandbox return ErrNotRunning for a paused or stopped sandbox and ErrNotFound for a missing one.
//
// Every process a method starts inside the sandbox (the command, a file helper, a terminal) is
// bounded in time and in the bytes read from it, and is killed with every process it started
// (except those that made a session of their own) on every way out of the method or of the
// returned stream: success, error, timeout, cancellation, a reader that stops reading, Close.
//
// Paths may be absolute or relative to the sandbox's working directory. File operations run with
// the sandbox's own user and see exactly what its processes see (tmpfs mounts included); they need
// a POSIX shell and the usual utilities (cat, head, mkdir, chmod, mv, rm, rmdir, stat, xargs) in
// the image. A change the sandbox's filesystem refuses is ErrReadOnly, ErrPermission or ErrNoSpace.
type Interactive interface {
	// Exec runs spec.Cmd and writes its stdout and stderr to the writers as they arrive (from one
	// goroutine at a time; never after Exec returns). When timeout (> 0) passes, it kills every
	// process the command started and returns TimedOut with a nil error; when ctx ends first, or a
	// writer fails (its reader is gone or stalled), it kills them too and returns that error along
	// with the result. Processes that outlive a command that ended by itself (started with `&`)
	// are left running. Once maxOutput (> 0) bytes of stdout and stderr together were written, the
	// rest is read and discarded, Truncated is set and the command runs on to its natural end (or
	// the timeout): memory stays bounded whatever it prints. A non-zero exit status is not an
	// error. Returns ErrWorkDirNotFound, before anything ran, when spec.WorkDir cannot be entered.
	Exec(ctx context.Context, id string, spec ExecSpec, stdout, stderr io.Writer, timeout time.Duration, maxOutput int64) (ExecResult, error)

	// WriteFile stores exactly size bytes read from content at path with permission bits mode
	// (0: 0644), creating missing parent directories. The file is replaced atomically (written
	// beside it, then renamed): it appears only once complete, and content that is shorter or
	// longer than size is an error that leaves any previous file untouched. A symbolic link at path
	// is replaced, not written through. Returns ErrIsDirectory when path is a directory and
	// ErrNotRegular when it is a device, FIFO or socket.
	WriteFile(ctx context.Context, id, path string, mode fs.FileMode, content io.Reader, size int64) error

	// ReadFile opens path (following symbolic links) and streams its content; the caller must close
	// the reader. ctx bounds the whole read, not only the opening. Returns ErrFileNotFound when it
	// is missing, ErrIsDirectory for a directory and ErrNotRegular for a device, FIFO or socket.
	// The content is at most the size stat reported when the file was opened (a file that grows
	// meanwhile is cut there), or PseudoFileLimit bytes for a kernel pseudo file (Size -1). A Read
	// error reports a failure inside the sandbox after the content started.
	ReadFile(ctx context.Context, id, path string) (io.ReadCloser, FileInfo, error)

	// RemoveFile removes a file, symbolic link or empty directory; with recursive, a directory and
	// everything in it. Returns ErrFileNotFound when path is missing and ErrDirectoryNotEmpty for a
	// non-empty directory without recursive.
	RemoveFile(ctx context.Context, id, path string, recursive bool) error

	// ListDir describes the entries of a directory (not recursively; "." and ".." left out; symbolic
	// links described, not followed), in no particular order. Returns ErrFileNotFound when path is
	// missing, ErrNotDirectory when it is not a directory and ErrTooManyEntries past MaxListEntries.
	ListDir(ctx context.Context, id, path string) ([]FileInfo, error)

	// Logs writes the sandbox's main output to stdout and stderr. Without Follow it returns at the
	// end of what was logged; with Follow it returns nil when the sandbox stops, or ctx's error when
	// ctx ends first. Works in every state, stopped included.
	Logs(ctx context.Context, id string, opts LogOptions, stdout, stderr io.Writer) error

	// Stats takes one sample of resource use; it takes about a second, as CPU use needs two readings.
	// Returns ErrNotRunning unless the sandbox is running or paused.
	Stats(ctx context.Context, id string) (Stats, error)

	// Terminal starts spec.Cmd (a shell, typically) on a pseudo-terminal of rows×cols cells and
	// attaches to it. spec.Stdin and spec.TTY are ignored: the Terminal is the input. ctx bounds the
	// start only: the session lasts until the command exits or the Terminal is closed. A command
	// that ends at once is not an error: its output and exit status are there to read.
	Terminal(ctx context.Context, id string, spec ExecSpec, rows, cols uint) (Terminal, error)
}
