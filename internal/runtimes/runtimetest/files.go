package runtimetest

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
)

// readAll reads a whole file through the runtime.
func readAll(t *testing.T, e *Env, rt Driver, id, path string) ([]byte, runtimes.FileInfo) {
	t.Helper()
	rc, info, err := rt.ReadFile(e.Ctx(), id, path)
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

// Files: WriteFile and ReadFile move bytes exactly, with modes and times, replace atomically and refuse
// what is not a regular file.
func testFiles(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())

	t.Run("binary round trip with new parent dirs", func(t *testing.T) {
		data := make([]byte, 1<<20)
		_, _ = rand.Read(data)
		const path = "/workspace/a/b c/d/blob.bin"
		before := time.Now().Add(-2 * time.Second)
		if err := rt.WriteFile(e.Ctx(), id, path, 0o640, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("WriteFile: %v", err)
		}
		got, info := readAll(t, e, rt, id, path)
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
		if _, out := e.Run(t, id, Script(`$(tool sha256sum) '`+path+`'`)...); !strings.HasPrefix(out, hex.EncodeToString(sum[:])) {
			t.Errorf("sha256sum in the sandbox = %q, want %x", out, sum)
		}
		if code, _ := e.Run(t, id, "test", "-d", "/workspace/a/b c/d"); code != 0 {
			t.Errorf("parent directories were not created")
		}
	})

	t.Run("empty file, relative path, default mode", func(t *testing.T) {
		if err := rt.WriteFile(e.Ctx(), id, "rel/empty", 0, strings.NewReader(""), 0); err != nil {
			t.Fatalf("WriteFile: %v", err)
		}
		got, info := readAll(t, e, rt, id, "/workspace/rel/empty")
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
			if err := rt.WriteFile(e.Ctx(), id, path, c.mode, strings.NewReader(c.content), int64(len(c.content))); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			got, info := readAll(t, e, rt, id, path)
			if string(got) != c.content || info.Mode != c.mode {
				t.Errorf("read %q mode %v, want %q mode %v", got, info.Mode, c.content, c.mode)
			}
		}
	})

	t.Run("wrong size leaves the old file", func(t *testing.T) {
		const path = "/workspace/keep.txt"
		if err := rt.WriteFile(e.Ctx(), id, path, 0, strings.NewReader("original"), 8); err != nil {
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
			if err := rt.WriteFile(e.Ctx(), id, path, 0, b.content, b.size); err == nil {
				t.Errorf("%s: WriteFile succeeded", b.name)
			}
		}
		if got, _ := readAll(t, e, rt, id, path); string(got) != "original" {
			t.Errorf("after failed writes the file holds %q, want \"original\"", got)
		}
		if _, out := e.Run(t, id, "ls", "-a", "/workspace"); strings.Contains(out, ".upload-") {
			t.Errorf("temporary files left behind: %q", out)
		}
	})

	t.Run("not found and directories", func(t *testing.T) {
		if _, _, err := rt.ReadFile(e.Ctx(), id, "/workspace/missing"); !errors.Is(err, runtimes.ErrFileNotFound) {
			t.Errorf("ReadFile of a missing file: %v, want ErrFileNotFound", err)
		}
		if _, _, err := rt.ReadFile(e.Ctx(), id, "/workspace"); !errors.Is(err, runtimes.ErrIsDirectory) {
			t.Errorf("ReadFile of a directory: %v, want ErrIsDirectory", err)
		}
		if err := rt.WriteFile(e.Ctx(), id, "/workspace/a", 0, strings.NewReader("x"), 1); !errors.Is(err, runtimes.ErrIsDirectory) {
			t.Errorf("WriteFile over a directory: %v, want ErrIsDirectory", err)
		}
		if _, err := rt.ListDir(e.Ctx(), id, "/workspace/missing"); !errors.Is(err, runtimes.ErrFileNotFound) {
			t.Errorf("ListDir of a missing dir: %v, want ErrFileNotFound", err)
		}
		if _, err := rt.ListDir(e.Ctx(), id, "/workspace/over.txt"); !errors.Is(err, runtimes.ErrNotDirectory) {
			t.Errorf("ListDir of a file: %v, want ErrNotDirectory", err)
		}
	})

	t.Run("read follows links; read-only paths fail", func(t *testing.T) {
		e.Run(t, id, "ln", "-s", "/workspace/over.txt", "/workspace/link")
		if got, info := readAll(t, e, rt, id, "/workspace/link"); string(got) != "second" || info.Size != 6 {
			t.Errorf("through the link: %q %+v", got, info)
		}
		if err := rt.WriteFile(e.Ctx(), id, "/proc/nope", 0, strings.NewReader("x"), 1); err == nil {
			t.Errorf("WriteFile into /proc succeeded")
		}
	})
}

// ListDir: every entry, whatever its name (spaces, newlines, leading dashes, globs), described without
// following links.
func testListDir(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())

	code, out := e.Run(t, id, "sh", "-c", `set -e; mkdir -p /workspace/d/sub /workspace/empty; cd /workspace/d
printf 12345 > plain; printf '' > 'with space'; printf ab > "$(printf 'new\nline')"; printf abc > .hidden
printf x > -rf; printf y > '*'; printf z > '..dots'; ln -s plain link`)
	if code != 0 {
		t.Fatalf("setup: %d %s", code, out)
	}

	infos, err := rt.ListDir(e.Ctx(), id, "/workspace/d")
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

	empty, err := rt.ListDir(e.Ctx(), id, "/workspace/empty")
	if err != nil || len(empty) != 0 {
		t.Errorf("ListDir of an empty dir = %v, %v; want none", empty, err)
	}
}

// RemoveFile: files, empty and (recursively) full directories; missing ones and the root are refused.
func testRemoveFile(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())
	if code, out := e.Run(t, id, "sh", "-c", "mkdir -p /workspace/full/deep /workspace/hollow && echo x > /workspace/full/deep/f && echo y > /workspace/file"); code != 0 {
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
		err := rt.RemoveFile(e.Ctx(), id, s.path, s.recursive)
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
	if _, _, err := rt.ReadFile(e.Ctx(), id, "/workspace/file"); !errors.Is(err, runtimes.ErrFileNotFound) {
		t.Errorf("ReadFile after RemoveFile: %v, want ErrFileNotFound", err)
	}
	if _, out := e.Run(t, id, "ls", "-A", "/workspace"); strings.TrimSpace(out) != "" {
		t.Errorf("/workspace still holds %q", out)
	}
}

// With a read-only root, the work directory and /tmp are tmpfs mounts that the engine's archive API
// cannot reach; files must still move in and out, and be what the sandbox's processes see.
func testFilesOnTmpfs(t *testing.T, e *Env) {
	rt := e.runtime(Options{ReadOnlyRoot: true, TmpfsSizeMB: 16})
	id := e.MustStart(rt, e.Spec())

	for _, path := range []string{"/workspace/x/y.txt", "/tmp/z.txt"} {
		if err := rt.WriteFile(e.Ctx(), id, path, 0, strings.NewReader("on tmpfs"), 8); err != nil {
			t.Fatalf("WriteFile %s: %v", path, err)
		}
		if _, out := e.Run(t, id, "cat", path); out != "on tmpfs" {
			t.Errorf("the sandbox sees %q in %s", out, path)
		}
		if got, _ := readAll(t, e, rt, id, path); string(got) != "on tmpfs" {
			t.Errorf("ReadFile %s = %q", path, got)
		}
	}
	if err := rt.WriteFile(e.Ctx(), id, "/etc/nope", 0, strings.NewReader("x"), 1); err == nil || !strings.Contains(err.Error(), "Read-only") {
		t.Errorf("WriteFile on the read-only root: %v, want a read-only error", err)
	}
}

// ReadFileBounds: a regular file is read up to the size it had when opened; a kernel pseudo
// file, which reports no size, up to PseudoFileLimit.
func testReadFileBounds(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())
	base := processes(t, e, id)

	t.Run("a growing file", func(t *testing.T) {
		e.Run(t, id, "sh", "-c", "(while :; do echo growing; done > /tmp/grow) >/dev/null 2>&1 & echo $! > /tmp/grow.pid; sleep 0.2")
		defer e.Run(t, id, "sh", "-c", "kill $(cat /tmp/grow.pid)")
		rc, info, err := rt.ReadFile(e.Ctx(), id, "/tmp/grow")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil || int64(len(data)) != info.Size || info.Size <= 0 {
			t.Errorf("read %d bytes (%v) of a file of %d when opened", len(data), err, info.Size)
		}
	})
	t.Run("pseudo files", func(t *testing.T) {
		for _, c := range []struct {
			path string
			want string
		}{{"/proc/cpuinfo", "processor"}, {"/proc/self/status", "Name:"}, {"/sys/kernel/mm/transparent_hugepage/enabled", "]"}} {
			data, info := readAll(t, e, rt, id, c.path)
			if info.Size != -1 || !bytes.Contains(data, []byte(c.want)) || len(data) > runtimes.PseudoFileLimit {
				t.Errorf("%s: size %d, %d bytes: %.80q", c.path, info.Size, len(data), data)
			}
		}
		// Several MB in the kernel's symbol table: cut at the limit.
		if data, _ := readAll(t, e, rt, id, "/proc/kallsyms"); len(data) != runtimes.PseudoFileLimit {
			t.Errorf("/proc/kallsyms: %d bytes, want the limit, %d", len(data), runtimes.PseudoFileLimit)
		}
	})
	e.Run(t, id, "sh", "-c", "kill $(cat /tmp/grow.pid) 2>/dev/null; sleep 0.1")
	wantNoStrangers(t, e, id, base, time.Second)
}

// FilesystemRefusals: what the sandbox's kernel refuses is told apart, not a bare failure.
func testFilesystemRefusals(t *testing.T, e *Env) {
	rt := e.runtime(Options{ReadOnlyRoot: true, TmpfsSizeMB: 1})
	id := e.MustStart(rt, e.Spec())
	write := func(p string, size int) error {
		return rt.WriteFile(e.Ctx(), id, p, 0, bytes.NewReader(make([]byte, size)), int64(size))
	}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"write on the read-only root", write("/etc/new", 1), runtimes.ErrReadOnly},
		{"write into a new directory on the read-only root", write("/opt/a/b", 1), runtimes.ErrReadOnly},
		{"write under /proc", write("/proc/new", 1), runtimes.ErrPermission},
		{"write under /sys", write("/sys/kernel/new", 1), runtimes.ErrReadOnly},
		{"write past the tmpfs size", write("/tmp/big", 2<<20), runtimes.ErrNoSpace},
		{"remove under /proc", rt.RemoveFile(e.Ctx(), id, "/proc/cpuinfo", false), runtimes.ErrPermission},
		{"remove under /sys", rt.RemoveFile(e.Ctx(), id, "/sys/kernel/notes", false), runtimes.ErrReadOnly},
		{"remove on the read-only root", rt.RemoveFile(e.Ctx(), id, "/bin/sh", false), runtimes.ErrReadOnly},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	if _, out := e.Run(t, id, "ls", "-A", "/tmp"); strings.TrimSpace(out) != "" {
		t.Errorf("a refused write left %q in /tmp", out)
	}
}

// ListDirLarge: listing is linear in the number of entries (the old script took over 30 s
// for 20k), and a directory past MaxListEntries is refused by name.
func testListDirLarge(t *testing.T, e *Env) {
	rt := e.runtime(Options{})
	id := e.MustStart(rt, e.Spec())
	if code, out := e.Run(t, id, "sh", "-c", "mkdir /tmp/many && cd /tmp/many && seq 20000 | xargs touch && touch .hidden ..dots"); code != 0 {
		t.Fatalf("setup: %d %s", code, out)
	}
	start := time.Now()
	infos, err := rt.ListDir(e.Ctx(), id, "/tmp/many")
	took := time.Since(start)
	if err != nil || len(infos) != 20002 {
		t.Fatalf("ListDir: %d entries, %v", len(infos), err)
	}
	if took > 5*time.Second {
		t.Errorf("listing 20k entries took %v", took)
	}
	t.Logf("listed %d entries in %v", len(infos), took)
}
