package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/runtimes"
)

// Files move through exec'd shell commands (cat, mkdir, stat, ...), not the engine's archive API
// (CopyToContainer/CopyFromContainer): the archive API works on the container's root filesystem
// from the host's side, so it cannot see tmpfs mounts (our /tmp and work directory when ReadOnlyRoot
// is on: the copy fails with "container rootfs is marked read-only" or reads the wrong file) nor a
// gVisor sandbox's in-memory overlay. An exec sees exactly what the sandbox's processes see, runs
// as the sandbox's user (so new files belong to it), and streams both ways without buffering.
//
// The scripts report outcomes through exit codes chosen to stay clear of the shell's own (1, 2, 126, 127).
const (
	exitNotFound = 90
	exitIsDir    = 91
	exitNotDir   = 92
	exitNotEmpty = 93
	exitShort    = 94 // WriteFile: the content did not have the announced size
)

// readScript prints "MODE_HEX SIZE MTIME" and then the file's bytes.
const readScript = `p=$1
[ -e "$p" ] || exit 90
[ -d "$p" ] && exit 91
stat -L -c '%f %s %Y' -- "$p" || exit 1
exec cat -- "$p"`

// writeScript writes stdin to a temporary file next to the target and renames it into place only
// once the size matches, so a cut-short upload never replaces the old file.
const writeScript = `dir=$1 p=$2 tmp=$3 mode=$4 size=$5
[ -d "$p" ] && exit 91
mkdir -p -- "$dir" || exit 1
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp" || exit 1
[ "$(stat -c %s -- "$tmp")" = "$size" ] || exit 94
chmod "$mode" "$tmp" || exit 1
mv -f -- "$tmp" "$p" || exit 1`

// removeScript removes a file, link or empty directory, or a whole tree when $2 is 1.
const removeScript = `p=$1
[ -e "$p" ] || [ -L "$p" ] || exit 90
if [ -d "$p" ] && [ ! -L "$p" ]; then
	[ "$2" = 1 ] && exec rm -rf -- "$p"
	err=$(rmdir -- "$p" 2>&1) && exit 0
	for f in "$p"/* "$p"/.[!.]* "$p"/..?*; do
		if [ -e "$f" ] || [ -L "$f" ]; then exit 93; fi
	done
	echo "$err" >&2
	exit 1
fi
exec rm -f -- "$p"`

// listScript prints the number of entries, their names each ended by a NUL byte (names may hold
// any byte but NUL and /), then one "MODE_HEX SIZE MTIME" line per entry in the same order. Names
// never pass through stat's output, so no name can be mistaken for a separator. The globs cover
// every name but . and ..; an entry that vanishes between the glob and stat makes stat fail, and
// the listing is retried.
const listScript = `[ -e "$1" ] || exit 90
[ -d "$1" ] || exit 92
cd "$1" || exit 1
set --
for f in * .[!.]* ..?*; do
	if [ -e "$f" ] || [ -L "$f" ]; then set -- "$@" "$f"; fi
done
echo "$#"
[ "$#" -gt 0 ] || exit 0
printf '%s\0' "$@"
exec stat -c '%f %s %Y' -- "$@"`

// maxListing bounds ListDir's output (names and metadata), about 200k entries.
const maxListing = 32 << 20

// sandboxPath checks and normalises a path inside the sandbox. A relative path is relative to the
// sandbox's working directory; it gets a "./" prefix so no path can be read as an option.
func sandboxPath(op, p string) (string, error) {
	if p == "" || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("docker: %s: invalid path %q", op, p)
	}
	clean := path.Clean(p)
	if path.IsAbs(clean) {
		return clean, nil
	}
	if clean == "." {
		return ".", nil
	}
	return "./" + clean, nil
}

// fileErr maps a script's exit code to the runtimes sentinels, keeping its stderr otherwise.
func fileErr(op, p string, run scriptResult) error {
	switch run.code {
	case 0:
		return nil
	case exitNotFound:
		return fmt.Errorf("docker: %s %q: %w", op, p, runtimes.ErrFileNotFound)
	case exitIsDir:
		return fmt.Errorf("docker: %s %q: %w", op, p, runtimes.ErrIsDirectory)
	case exitNotDir:
		return fmt.Errorf("docker: %s %q: %w", op, p, runtimes.ErrNotDirectory)
	case exitNotEmpty:
		return fmt.Errorf("docker: %s %q: %w", op, p, runtimes.ErrDirectoryNotEmpty)
	case exitShort:
		return fmt.Errorf("docker: %s %q: the content did not have the announced size", op, p)
	}
	msg := strings.TrimSpace(string(run.stderr))
	if msg == "" {
		msg = "no message"
	}
	return fmt.Errorf("docker: %s %q: exit status %d: %s", op, p, run.code, msg)
}

// WriteFile stores content at path; see runtimes.Interactive for the contract.
func (r *Runtime) WriteFile(ctx context.Context, id, p string, mode fs.FileMode, content io.Reader, size int64) error {
	p, err := sandboxPath("write file", p)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("docker: write file %q: negative size %d", p, size)
	}
	if p == "/" || p == "." {
		return fmt.Errorf("docker: write file %q: %w", p, runtimes.ErrIsDirectory)
	}
	if mode == 0 {
		mode = 0o644
	}
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	tmp := path.Join(dir, "."+truncate(base, 100)+".upload-"+randSuffix())
	args := []string{dir, p, tmp, strconv.FormatUint(uint64(mode.Perm()), 8), strconv.FormatInt(size, 10)}
	feed := func(w io.Writer) error { return copyExactly(w, content, size) }
	run, err := r.runScript(ctx, "write file", id, "", writeScript, args, feed, 0)
	if err != nil {
		return err
	}
	return fileErr("write file", p, run)
}

// copyExactly copies size bytes and fails unless content ends right there. The last byte is held
// back until the end is seen, so too long a content never reaches the announced size on the other
// side (where the size check then rejects it).
func copyExactly(w io.Writer, content io.Reader, size int64) error {
	if size > 0 {
		if n, err := io.CopyN(w, content, size-1); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("content ended after %d of %d bytes", n, size)
			}
			return err
		}
	}
	buf := make([]byte, 2)
	want := 1
	if size == 0 {
		want = 0
	}
	n, err := io.ReadFull(content, buf[:want+1])
	switch {
	case n > want:
		return fmt.Errorf("content is longer than %d bytes", size)
	case n < want:
		if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("content ended after %d of %d bytes", size-1, size)
		}
		return err
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		return err
	}
	_, err = w.Write(buf[:want])
	return err
}

// ReadFile streams the file at path; see runtimes.Interactive for the contract. ctx bounds the
// whole read, not just the opening.
func (r *Runtime) ReadFile(ctx context.Context, id, p string) (io.ReadCloser, runtimes.FileInfo, error) {
	p, err := sandboxPath("read file", p)
	if err != nil {
		return nil, runtimes.FileInfo{}, err
	}
	s, err := r.startExec(ctx, "read file", id, client.ExecCreateOptions{
		AttachStdout: true,
		AttachStderr: true,
		Cmd:          []string{"/bin/sh", "-c", readScript, "sh", p},
	})
	if err != nil {
		return nil, runtimes.FileInfo{}, err
	}
	f := &fileReader{r: r, id: id, path: p, execID: s.execID, hj: s.hj, stderr: &limitedBuffer{max: stderrKeep, truncate: true}}
	f.stopCtx = context.AfterFunc(ctx, func() { f.hj.Close() })
	pr, pw := io.Pipe()
	f.pr = pr
	go f.pump(ctx, pw, p)
	f.br = bufio.NewReader(pr)

	// The header is a stat line from inside the sandbox: bounded, so a hostile sandbox printing
	// endless bytes without a newline cannot grow our memory.
	header, err := readHeader(f.br)
	if err != nil {
		// Nothing came out: the script stopped before cat. Its exit code says why.
		f.Close()
		var ended *scriptEnded
		if errors.As(err, &ended) {
			return nil, runtimes.FileInfo{}, fileErr("read file", p, ended.run)
		}
		return nil, runtimes.FileInfo{}, err
	}
	info, err := parseStatLine(strings.TrimSuffix(header, "\n"))
	if err != nil {
		f.Close()
		return nil, runtimes.FileInfo{}, fmt.Errorf("docker: read file %q: %w", p, err)
	}
	info.Name, info.Path = path.Base(p), p
	return f, info, nil
}

// fileReader streams a file out of the exec's stdout.
type fileReader struct {
	r       *Runtime
	id      string
	path    string
	execID  string
	hj      client.HijackedResponse
	stderr  *limitedBuffer
	pr      *io.PipeReader
	br      *bufio.Reader
	stopCtx func() bool
}

// scriptEnded is the pipe's error when the script ended without success: it carries the result
// so the exit code can be mapped.
type scriptEnded struct{ run scriptResult }

func (e *scriptEnded) Error() string { return fmt.Sprintf("exit status %d", e.run.code) }

// pump demultiplexes the stream into the pipe and ends the pipe with the script's outcome.
func (f *fileReader) pump(ctx context.Context, pw *io.PipeWriter, p string) {
	_, err := stdcopy.StdCopy(pw, f.stderr, f.hj.Reader)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		pw.CloseWithError(fmt.Errorf("docker: read file %q: %w", p, err))
		return
	}
	code, err := f.r.waitExec(ctx, f.execID, nil, nil)
	switch {
	case err != nil:
		pw.CloseWithError(mapErr("read file: inspect", f.id, err))
	case code != 0:
		pw.CloseWithError(&scriptEnded{run: scriptResult{code: code, stderr: f.stderr.Bytes()}})
	default:
		pw.Close()
	}
}

func (f *fileReader) Read(b []byte) (int, error) {
	n, err := f.br.Read(b)
	var ended *scriptEnded
	if errors.As(err, &ended) {
		err = fileErr("read file", f.path, ended.run)
	}
	return n, err
}

// Close stops the transfer; cat then dies on a broken pipe.
func (f *fileReader) Close() error {
	f.stopCtx()
	f.hj.Close()
	f.pr.Close()
	return nil
}

// parseStatLine reads "MODE_HEX SIZE MTIME" as printed by stat -c '%f %s %Y'.
func parseStatLine(line string) (runtimes.FileInfo, error) {
	fields := strings.Fields(line)
	if len(fields) != 3 {
		return runtimes.FileInfo{}, fmt.Errorf("unexpected stat output %q", line)
	}
	raw, err1 := strconv.ParseUint(fields[0], 16, 32)
	size, err2 := strconv.ParseInt(fields[1], 10, 64)
	mtime, err3 := strconv.ParseInt(fields[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return runtimes.FileInfo{}, fmt.Errorf("unexpected stat output %q: %w", line, err)
	}
	mode := unixMode(uint32(raw))
	return runtimes.FileInfo{Size: size, Mode: mode, IsDir: mode.IsDir(), ModifiedAt: time.Unix(mtime, 0).UTC()}, nil
}

// unixMode converts a raw st_mode into an fs.FileMode.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	}
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// RemoveFile removes path; see runtimes.Interactive for the contract.
func (r *Runtime) RemoveFile(ctx context.Context, id, p string, recursive bool) error {
	p, err := sandboxPath("remove file", p)
	if err != nil {
		return err
	}
	if p == "/" || p == "." {
		return fmt.Errorf("docker: remove file: refusing to remove %q", p)
	}
	rec := "0"
	if recursive {
		rec = "1"
	}
	run, err := r.runScript(ctx, "remove file", id, "", removeScript, []string{p, rec}, nil, 0)
	if err != nil {
		return err
	}
	return fileErr("remove file", p, run)
}

// ListDir describes the entries of a directory; see runtimes.Interactive for the contract.
func (r *Runtime) ListDir(ctx context.Context, id, p string) ([]runtimes.FileInfo, error) {
	p, err := sandboxPath("list dir", p)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		run, err := r.runScript(ctx, "list dir", id, "", listScript, []string{p}, nil, maxListing)
		if errors.Is(err, errOutputTooLarge) {
			return nil, fmt.Errorf("docker: list dir %q: more than %d MiB of entries", p, maxListing>>20)
		}
		if err != nil {
			return nil, err
		}
		if run.code == exitNotFound || run.code == exitNotDir {
			return nil, fileErr("list dir", p, run)
		}
		infos, perr := parseListing(p, run.stdout)
		if run.code == 0 && perr == nil {
			return infos, nil
		}
		// An entry vanished between the glob and stat (the directory is changing): list again.
		if attempt == 2 {
			if run.code != 0 {
				return nil, fileErr("list dir", p, run)
			}
			return nil, fmt.Errorf("docker: list dir %q: %w", p, perr)
		}
	}
}

// maxHeader bounds the stat line ReadFile reads before the content.
const maxHeader = 4096

func readHeader(br *bufio.Reader) (string, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxHeader {
			return "", errors.New("docker: read file: malformed header from the sandbox")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return string(line), err
	}
}

// parseListing reads listScript's output.
func parseListing(dir string, out []byte) ([]runtimes.FileInfo, error) {
	countLine, rest, ok := bytes.Cut(out, []byte("\n"))
	if !ok {
		return nil, errors.New("listing ends early")
	}
	n, err := strconv.Atoi(string(countLine))
	// The count comes from inside the sandbox, whose user may have replaced /bin/sh: never trust
	// it further than the bytes that follow (each entry is at least a name byte and a NUL).
	if err != nil || n < 0 || n > len(rest)/2 {
		return nil, fmt.Errorf("unexpected listing count %q", countLine)
	}
	infos := make([]runtimes.FileInfo, 0, n)
	for range n {
		name, after, ok := bytes.Cut(rest, []byte{0})
		if !ok {
			return nil, errors.New("listing ends early")
		}
		infos = append(infos, runtimes.FileInfo{Name: string(name), Path: path.Join(dir, string(name))})
		rest = after
	}
	for i := range infos {
		line, after, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, errors.New("listing has fewer stat lines than names")
		}
		rest = after
		st, err := parseStatLine(string(line))
		if err != nil {
			return nil, err
		}
		st.Name, st.Path = infos[i].Name, infos[i].Path
		infos[i] = st
	}
	return infos, nil
}
