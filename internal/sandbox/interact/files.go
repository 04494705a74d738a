package interact

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/runtimes"
)

// CheckPath accepts an absolute, clean path (path.Clean leaves it unchanged: no "..", ".", "//"
// or trailing "/") without NUL bytes: the one spelling of a file, so no path escapes or aliases.
func CheckPath(p string) error {
	switch {
	case p == "":
		return apierror.Invalid("path", "path is required, e.g. ?path=/tmp/file.txt")
	case strings.ContainsRune(p, 0):
		return apierror.Invalid("path", "path must not contain NUL bytes")
	case !path.IsAbs(p):
		return apierror.Invalid("path", "path must be absolute (start with /)")
	case path.Clean(p) != p:
		return apierror.Invalid("path", "path must be clean: no '.' or '..' elements, repeated or trailing slashes (did you mean %s?)", path.Clean(p))
	}
	return nil
}

// tooLarge is the 413 of an upload over sandbox.max_upload_bytes.
func tooLarge(limit int64) *apierror.Error {
	return apierror.TooLarge("payload_too_large", "the file exceeds %d bytes (sandbox.max_upload_bytes)", limit)
}

// WriteFile stores size bytes of content at p (parent directories created, mode 0 meaning 0644),
// replacing any file there atomically. A negative size means unknown: the content is spooled to
// a temporary file first (at most sandbox.max_upload_bytes). It returns the size written.
func (s *Service) WriteFile(ctx context.Context, userID, id uuid.UUID, p string, mode fs.FileMode, content io.Reader, size int64) (int64, error) {
	if err := CheckPath(p); err != nil {
		return 0, err
	}
	if mode&^fs.ModePerm != 0 {
		return 0, apierror.Invalid("mode", "mode must be permission bits between 0001 and 0777")
	}
	if size > s.cfg.MaxUploadBytes {
		return 0, tooLarge(s.cfg.MaxUploadBytes)
	}
	sb, err := s.running(ctx, userID, id)
	if err != nil {
		return 0, err
	}
	if size < 0 {
		spool, n, err := s.spool(content)
		if err != nil {
			return 0, err
		}
		defer func() {
			spool.Close()
			os.Remove(spool.Name())
		}()
		content, size = spool, n
	}
	return size, fileErr(sb, "write", p, s.rt.WriteFile(ctx, container(sb), p, mode, content, size))
}

// spool copies content of unknown length to a temporary file, so its size is known before the
// sandbox sees a byte.
func (s *Service) spool(content io.Reader) (*os.File, int64, error) {
	f, err := os.CreateTemp("", "sandbox-upload-*")
	if err != nil {
		return nil, 0, fmt.Errorf("spooling an upload: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(content, s.cfg.MaxUploadBytes+1))
	if err != nil {
		err = fmt.Errorf("spooling an upload: receiving it: %w", err)
	} else if n > s.cfg.MaxUploadBytes {
		err = tooLarge(s.cfg.MaxUploadBytes)
	} else if _, err = f.Seek(0, io.SeekStart); err != nil {
		err = fmt.Errorf("spooling an upload: rewinding it: %w", err)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, err
	}
	return f, n, nil
}

// OpenFile streams the file at p; the caller closes the reader. ctx bounds the whole transfer.
func (s *Service) OpenFile(ctx context.Context, userID, id uuid.UUID, p string) (io.ReadCloser, runtimes.FileInfo, error) {
	if err := CheckPath(p); err != nil {
		return nil, runtimes.FileInfo{}, err
	}
	sb, err := s.running(ctx, userID, id)
	if err != nil {
		return nil, runtimes.FileInfo{}, err
	}
	r, info, err := s.rt.ReadFile(ctx, container(sb), p)
	if err != nil {
		return nil, runtimes.FileInfo{}, fileErr(sb, "read", p, err)
	}
	return r, info, nil
}

// RemoveFile removes a file, link or empty directory; with recursive, a directory and its content.
func (s *Service) RemoveFile(ctx context.Context, userID, id uuid.UUID, p string, recursive bool) error {
	if err := CheckPath(p); err != nil {
		return err
	}
	if p == "/" {
		return apierror.Invalid("path", "the root directory cannot be removed")
	}
	sb, err := s.running(ctx, userID, id)
	if err != nil {
		return err
	}
	return fileErr(sb, "remove", p, s.rt.RemoveFile(ctx, container(sb), p, recursive))
}

// ListDir describes a directory's entries (not recursively), sorted by name.
func (s *Service) ListDir(ctx context.Context, userID, id uuid.UUID, p string) ([]runtimes.FileInfo, error) {
	if err := CheckPath(p); err != nil {
		return nil, err
	}
	sb, err := s.running(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	entries, err := s.rt.ListDir(ctx, container(sb), p)
	if err != nil {
		return nil, fileErr(sb, "list", p, err)
	}
	slices.SortFunc(entries, func(a, b runtimes.FileInfo) int { return strings.Compare(a.Name, b.Name) })
	return entries, nil
}

// ParseMode reads an octal permission such as 0644 or 755; empty means the default (0644).
func ParseMode(raw string) (fs.FileMode, error) {
	if raw == "" {
		return 0, nil
	}
	var mode uint32
	if _, err := fmt.Sscanf(raw, "%o", &mode); err != nil || mode == 0 || mode > 0o777 ||
		strings.TrimLeft(raw, "01234567") != "" || len(raw) > 4 {
		return 0, apierror.Invalid("mode", "mode must be octal permission bits between 0001 and 0777, e.g. 0644")
	}
	return fs.FileMode(mode), nil
}

// FileType names the kind of a file for clients.
func FileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsRegular():
		return "file"
	}
	return "other"
}
