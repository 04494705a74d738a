package kubernetes

import (
	"context"
	"io"
	"io/fs"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
)

var _ runtimes.Interactive = (*Runtime)(nil)

// Exec runs spec.Cmd inside the sandbox through the shell layer; see runtimes.Interactive. A
// spec.User is ErrNotSupported: Kubernetes exec runs as the container's user.
func (r *Runtime) Exec(ctx context.Context, id string, spec runtimes.ExecSpec, stdout, stderr io.Writer,
	timeout time.Duration, maxOutput int64) (runtimes.ExecResult, error) {
	return r.in.sh.Exec(ctx, id, spec, stdout, stderr, timeout, maxOutput)
}

// Terminal starts spec.Cmd on a pseudo-terminal; see runtimes.Interactive.
func (r *Runtime) Terminal(ctx context.Context, id string, spec runtimes.ExecSpec, rows, cols uint) (runtimes.Terminal, error) {
	return r.in.sh.Terminal(ctx, id, spec, rows, cols)
}

// WriteFile stores content at path; see runtimes.Interactive.
func (r *Runtime) WriteFile(ctx context.Context, id, path string, mode fs.FileMode, content io.Reader, size int64) error {
	return r.in.sh.WriteFile(ctx, id, path, mode, content, size)
}

// ReadFile streams the file at path; see runtimes.Interactive.
func (r *Runtime) ReadFile(ctx context.Context, id, path string) (io.ReadCloser, runtimes.FileInfo, error) {
	return r.in.sh.ReadFile(ctx, id, path)
}

// RemoveFile removes path; see runtimes.Interactive.
func (r *Runtime) RemoveFile(ctx context.Context, id, path string, recursive bool) error {
	return r.in.sh.RemoveFile(ctx, id, path, recursive)
}

// ListDir describes the entries of a directory; see runtimes.Interactive.
func (r *Runtime) ListDir(ctx context.Context, id, path string) ([]runtimes.FileInfo, error) {
	return r.in.sh.ListDir(ctx, id, path)
}
