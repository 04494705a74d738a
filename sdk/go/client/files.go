package client

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"

	"github.com/insien/orchestrator/sdk/go/api"
)

// Files reads and writes one sandbox's filesystem. Paths are absolute and clean ("/workspace/a.txt").
type Files struct{ sb *Sandbox }

// Write stores everything r yields at path, byte for byte (parents created, the file replaced
// atomically, mode 0644). A body that can be rewound (*bytes.Reader, *bytes.Buffer,
// *strings.Reader) is retried like any PUT; any other reader is streamed once.
func (f *Files) Write(ctx context.Context, path string, r io.Reader) (*api.WrittenFile, error) {
	return f.WriteMode(ctx, path, r, 0)
}

// WriteMode is Write with the file's permission bits (e.g. 0o755; only fs.ModePerm's bits count);
// 0 means the default, 0644.
func (f *Files) WriteMode(ctx context.Context, path string, r io.Reader, mode fs.FileMode) (*api.WrittenFile, error) {
	id, err := f.sb.uuid()
	if err != nil {
		return nil, err
	}
	params := &api.WriteFileParams{Path: path}
	if mode != 0 {
		m := fmt.Sprintf("%04o", mode.Perm())
		params.Mode = &m
	}
	req, err := api.NewWriteFileRequestWithBody(f.sb.c.server(), id, params, "application/octet-stream", r)
	if err != nil {
		return nil, fmt.Errorf("insien: building the write request: %w", err)
	}
	var out api.WrittenFile
	if err := f.sb.c.doJSON(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Read opens the file at path for reading, byte for byte; the caller closes it. A read that ends
// early (the transfer broke) fails with io.ErrUnexpectedEOF rather than a short file.
func (f *Files) Read(ctx context.Context, path string) (io.ReadCloser, error) {
	id, err := f.sb.uuid()
	if err != nil {
		return nil, err
	}
	req, err := api.NewReadFileRequest(f.sb.c.server(), id, &api.ReadFileParams{Path: path})
	if err != nil {
		return nil, fmt.Errorf("insien: building the read request: %w", err)
	}
	resp, err := f.sb.c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// List describes the entries of the directory dir (not recursively), sorted by name.
func (f *Files) List(ctx context.Context, dir string) ([]api.FileEntry, error) {
	id, err := f.sb.uuid()
	if err != nil {
		return nil, err
	}
	r, err := f.sb.c.API.ListFilesWithResponse(ctx, id, &api.ListFilesParams{Path: dir})
	if err != nil {
		return nil, requestFailed("listing "+dir, err)
	}
	if r.JSON200 == nil {
		return nil, responseError(r.HTTPResponse, r.Body)
	}
	return deref(r.JSON200.Entries), nil
}

// Remove deletes the file, link or empty directory at path (409 directory_not_empty for a
// directory with content: RemoveAll removes those).
func (f *Files) Remove(ctx context.Context, path string) error {
	return f.remove(ctx, path, false)
}

// RemoveAll deletes path and, for a directory, everything under it.
func (f *Files) RemoveAll(ctx context.Context, path string) error {
	return f.remove(ctx, path, true)
}

func (f *Files) remove(ctx context.Context, path string, recursive bool) error {
	id, err := f.sb.uuid()
	if err != nil {
		return err
	}
	params := &api.RemoveFileParams{Path: path}
	if recursive {
		params.Recursive = &recursive
	}
	r, err := f.sb.c.API.RemoveFileWithResponse(ctx, id, params)
	if err != nil {
		return requestFailed("removing "+path, err)
	}
	if r.StatusCode() != http.StatusNoContent {
		return responseError(r.HTTPResponse, r.Body)
	}
	return nil
}
