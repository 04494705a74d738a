package docker_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/runtimes/docker"
)

// readAll reads a whole file through the runtime.
func readAll(t *testing.T, h *harness, rt *docker.Runtime, id, path string) ([]byte, runtimes.FileInfo) {
	t.Helper()
	rc, info, err := rt.ReadFile(h.ctx(), id, path)
	if err != nil {
		t.Fatalf("ReadFile %s: %v", path, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return data, info
}

func TestFiles(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	id := h.mustStart(rt, h.spec())

	t.Run("binary round trip with new parent dirs", func(t *testing.T) {
		data := make([]byte, 1<<20)
		_, _ = rand.Read(data)
		const path = "/workspace/a/b c/d/blob.bin"
		before := time.Now().Add(-2 * time.Second)
		if err := rt.WriteFile(h.ctx(), id, path, 0o640, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("WriteFile: %v", err)
		}
		got, info := readAll(t, h, rt, id, path)
		if !bytes.Equal(got, data) {
			t.Errorf("read %d bytes back, not the %d written", len(got), len(data))
		}
		if info.Size != int64(len(data)) || info.Mode != 0o640 || info.IsDir || info.Name != "blob.bin" || info.Path != path {
			t.Errorf("FileInfo = %+v, want size %d, mode 0640, name blob.bin", info, len(data))
		}
		if info.ModifiedAt.Before(before) || info.ModifiedAt.After(time.Now().Add(2*time.Second)) {
			t.Errorf("ModifiedAt = %v, want about now", info.ModifiedAt)
		}
		// The same bytes as seen by the sandbox's own processes.
		sum := sha256.Sum256(data)
		if _, out := h.exec(t, id, sh(`$(tool sha256sum) '`+path+`'`)...); !strings.HasPrefix(out, hex.EncodeToString(sum[:])) {
			t.Errorf("sha256sum in the sandbox = %q, want %x", out, sum)
		}
		if code, _ := h.exec(t, id, "test", "-d", "/workspace/a/b c/d"); code != 0 {
			t.Errorf("parent directories were not created")
		}
	})

	t.Run("empty file, relative path, default mode", func(t *testing.T) {
		if err := rt.WriteFile(h.ctx(), id, "rel/empty", 0, strings.NewReader(""), 0); err != nil {
			t.Fatalf("WriteFile: %v", err)
		}
		got, info := readAll(t, h, rt, id, "/workspace/rel/empty")
		if len(got) != 0 || info.Size != 0 || info.Mode != 0o644 {
			t.Errorf("read %q, %+v; want empty, mode 0644", got, info)
		}
	})

	t.Run("overwrite replaces content and mode", func(t *testing.T) {
		const path = "/workspace/over.txt"
		for _, c := range []struct {
			content string
			mode    fs.FileMode
		}{{"first version, longer", 0o600}, {"second", 0o755}} {
			if err := rt.WriteFile(h.ctx(), id, path, c.mode, strings.NewReader(c.content), int64(len(c.content))); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			got, info := readAll(t, h, rt, id, path)
			if string(got) != c.content || info.Mode != c.mode {
				t.Errorf("read %q mode %v, want %q mode %v", got, info.Mode, c.content, c.mode)
			}
		}
	})

	t.Run("wrong size leaves the old file", func(t *testing.T) {
		const path = "/workspace/keep.txt"
		if err := rt.WriteFile(h.ctx(), id, path, 0, strings.NewReader("original"), 8); err != nil {
			t.Fatalf("WriteFile: %v", err)
		}
		bad := []struct {
			name    string
			content io.Reader
			size    int64
		}{
			{"short", strings.NewReader("new"), 10},
			{"long", strings.NewReader("new content that is too long"), 3},
			{"read error", io.MultiReader(strings.NewReader("new"), iotest.ErrReader(errors.New("client went away"))), 10},
			{"negative size", strings.NewReader("new"), -1},
		}
		for _, b := range bad {
			if err := rt.WriteFile(h.ctx(), id, path, 0, b.content, b.size); err == nil {
				t.Errorf("%s: WriteFile succeeded", b.name)
			}
		}
		if got, _ := readAll(t, h, rt, id, path); string(got) != "original" {
			t.Errorf("after failed writes the file holds %q, want \"original\"", got)
		}
		if _, out := h.exec(t, id, "ls", "-a", "/workspace"); strings.Contains(out, ".upload-") {
			t.Errorf("temporary files left behind: %q", out)
		}
	})

	t.Run("not found and directories", func(t *testing.T) {
		if _, _, err := rt.ReadFile(h.ctx(), id, "/workspace/missing"); !errors.Is(err, runtimes.ErrFileNotFound) {
			t.Errorf("ReadFile of a missing file: %v, want ErrFileNotFound", err)
		}
		if _, _, err := rt.ReadFile(h.ctx(), id, "/workspace"); !errors.Is(err, runtimes.ErrIsDirectory) {
			t.Errorf("ReadFile of a directory: %v, want ErrIsDirectory", err)
		}
		if err := rt.WriteFile(h.ctx(), id, "/workspace/a", 0, strings.NewReader("x"), 1); !errors.Is(err, runtimes.ErrIsDirectory) {
			t.Errorf("WriteFile over a directory: %v, want ErrIsDirectory", err)
		}
		if _, err := rt.ListDir(h.ctx(), id, "/workspace/missing"); !errors.Is(err, runtimes.ErrFileNotFound) {
			t.Errorf("ListDir of a missing dir: %v, want ErrFileNotFound", err)
		}
		if _, err := rt.ListDir(h.ctx(), id, "/workspace/over.txt"); !errors.Is(err, runtimes.ErrNotDirectory) {
			t.Errorf("ListDir of a file: %v, want ErrNotDirectory", err)
		}
	})

	t.Run("read follows links; read-only paths fail", func(t *testing.T) {
		h.exec(t, id, "ln", "-s", "/workspace/over.txt", "/workspace/link")
		if got, info := readAll(t, h, rt, id, "/workspace/link"); string(got) != "second" || info.Size != 6 {
			t.Errorf("through the link: %q %+v", got, info)
		}
		if err := rt.WriteFile(h.ctx(), id, "/proc/nope", 0, strings.NewReader("x"), 1); err == nil {
			t.Errorf("WriteFile into /proc succeeded")
		}
	})
}

func TestListDir(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	id := h.mustStart(rt, h.spec())

	code, out := h.exec(t, id, "sh", "-c", `set -e; mkdir -p /workspace/d/sub /workspace/empty; cd /workspace/d
printf 12345 > plain; printf '' > 'with space'; printf ab > "$(printf 'new\nline')"; printf abc > .hidden
printf x > -rf; printf y > '*'; printf z > '..dots'; ln -s plain link`)
	if code != 0 {
		t.Fatalf("setup: %d %s", code, out)
	}

	infos, err := rt.ListDir(h.ctx(), id, "/workspace/d")
	if err != nil {
		t.Fatalf("ListDir: %v", err)
	}
	type entry struct {
		size  int64
		dir   bool
		mtype fs.FileMode
	}
	got := map[string]entry{}
	for _, in := range infos {
		got[in.Name] = entry{in.Size, in.IsDir, in.Mode.Type()}
		if in.Path != "/workspace/d/"+in.Name {
			t.Errorf("Path of %q = %q", in.Name, in.Path)
		}
		if in.ModifiedAt.IsZero() {
			t.Errorf("%q has no ModifiedAt", in.Name)
		}
	}
	want := map[string]entry{
		"plain": {5, false, 0}, "with space": {0, false, 0}, "new\nline": {2, false, 0}, ".hidden": {3, false, 0},
		"-rf": {1, false, 0}, "*": {1, false, 0}, "..dots": {1, false, 0}, "link": {5, false, fs.ModeSymlink},
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("entry %q = %+v (present %v), want %+v", name, g, ok, w)
		}
	}
	if g := got["sub"]; !g.dir || g.mtype != fs.ModeDir {
		t.Errorf("sub = %+v, want a directory", g)
	}
	if len(got) != len(want)+1 {
		t.Errorf("ListDir returned %d entries, want %d: %q", len(got), len(want)+1, slices.Sorted(maps.Keys(got)))
	}

	empty, err := rt.ListDir(h.ctx(), id, "/workspace/empty")
	if err != nil || len(empty) != 0 {
		t.Errorf("ListDir of an empty dir = %v, %v; want none", empty, err)
	}
}

func TestRemoveFile(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{})
	id := h.mustStart(rt, h.spec())
	if code, out := h.exec(t, id, "sh", "-c", "mkdir -p /workspace/full/deep /workspace/hollow && echo x > /workspace/full/deep/f && echo y > /workspace/file"); code != 0 {
		t.Fatalf("setup: %s", out)
	}

	steps := []struct {
		name      string
		path      string
		recursive bool
		want      error
	}{
		{"file", "/workspace/file", false, nil},
		{"file again", "/workspace/file", false, runtimes.ErrFileNotFound},
		{"empty dir", "/workspace/hollow", false, nil},
		{"non-empty dir", "/workspace/full", false, runtimes.ErrDirectoryNotEmpty},
		{"non-empty dir recursively", "/workspace/full", true, nil},
		{"root", "/", true, errors.New("refused")},
	}
	for _, s := range steps {
		err := rt.RemoveFile(h.ctx(), id, s.path, s.recursive)
		switch {
		case s.want == nil && err != nil:
			t.Errorf("%s: %v", s.name, err)
		case s.want != nil && err == nil:
			t.Errorf("%s: nil error, want %v", s.name, s.want)
		case s.want != nil && errors.Is(s.want, runtimes.ErrFileNotFound) && !errors.Is(err, s.want),
			s.want != nil && errors.Is(s.want, runtimes.ErrDirectoryNotEmpty) && !errors.Is(err, s.want):
			t.Errorf("%s: %v, want %v", s.name, err, s.want)
		}
	}
	if _, _, err := rt.ReadFile(h.ctx(), id, "/workspace/file"); !errors.Is(err, runtimes.ErrFileNotFound) {
		t.Errorf("ReadFile after RemoveFile: %v, want ErrFileNotFound", err)
	}
	if _, out := h.exec(t, id, "ls", "-A", "/workspace"); strings.TrimSpace(out) != "" {
		t.Errorf("/workspace still holds %q", out)
	}
}

// With a read-only root, the work directory and /tmp are tmpfs mounts that the engine's archive API
// cannot reach; files must still move in and out, and be what the sandbox's processes see.
func TestFilesOnTmpfs(t *testing.T) {
	h := newHarness(t)
	rt := h.runtime(docker.Options{ReadOnlyRoot: true, TmpfsSizeMB: 16})
	id := h.mustStart(rt, h.spec())

	for _, path := range []string{"/workspace/x/y.txt", "/tmp/z.txt"} {
		if err := rt.WriteFile(h.ctx(), id, path, 0, strings.NewReader("on tmpfs"), 8); err != nil {
			t.Fatalf("WriteFile %s: %v", path, err)
		}
		if _, out := h.exec(t, id, "cat", path); out != "on tmpfs" {
			t.Errorf("the sandbox sees %q in %s", out, path)
		}
		if got, _ := readAll(t, h, rt, id, path); string(got) != "on tmpfs" {
			t.Errorf("ReadFile %s = %q", path, got)
		}
	}
	if err := rt.WriteFile(h.ctx(), id, "/etc/nope", 0, strings.NewReader("x"), 1); err == nil || !strings.Contains(err.Error(), "Read-only") {
		t.Errorf("WriteFile on the read-only root: %v, want a read-only error", err)
	}
}
