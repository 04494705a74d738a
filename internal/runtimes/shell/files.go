package shell

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

	"github.com/insien/orchestrator/internal/runtimes"
)

// Files move through shell commands run in the sandbox (cat, mkdir, stat, ...), not through a
// runtime's archive API (Docker's CopyToContainer/CopyFromContainer, kubectl cp's tar): Docker's
// archive API works on the container's root filesystem from the host's side, so it cannot see tmpfs
// mounts (our /tmp and work directory when ReadOnlyRoot is on: the copy fails with "container
// rootfs is marked read-only" or reads the wrong file) nor a gVisor sandbox's in-memory overlay. A
// process in the sandbox sees exactly what the sandbox's processes see, runs as the sandbox's user
// (so new files belong to it), and streams both ways without buffering.
//
// The scripts report outcomes through exit codes chosen to stay clear of the shell's own (1, 2, 126,
// 127); a failure of a command inside them (mkdir, mv, rm, ...) is told by its message on stderr
// (see refusal).
const (
	exitNotFound   = 90
	exitIsDir      = 91
	exitNotDir     = 92
	exitNotEmpty   = 93
	exitShort      = 94 // WriteFile: the content did not have the announced size
	exitNotRegular = 95 // a device, FIFO or socket
	exitNoCreate   = 96 // WriteFile: the directory exists but no file can be created in it
	exitTooMany    = 97 // ListDir: more than MaxListEntries entries
)

// readScript opens the file, prints "MODE_HEX SIZE MTIME EXACT" and then at most LIMIT of its
// bytes: SIZE as stat reports it when EXACT is 1, so a file that grows while it is read cannot
// stream forever; $2 (runtimes.PseudoFileLimit) for a kernel pseudo filesystem (EXACT 0), whose
// files report no size: proc, sysfs, cgroup v1 and v2, debugfs, securityfs, tracefs, configfs,
// bpf, pstore, efivarfs and mqueue, by the magic numbers of statfs(2). The file is opened before
// the header, so a refusal (permission) is an exit status, not a broken stream. Devices, FIFOs
// and sockets are refused: reading /dev/zero never ends, reading a FIFO blocks.
const readScript = `p=$1
[ -e "$p" ] || exit 90
[ -d "$p" ] && exit 91
[ -f "$p" ] || exit 95
exec 3<"$p"
st=$(stat -L -c '%f %s %Y' -- "$p") || exit 1
fs=$(stat -L -f -c %t -- "$p") || exit 1
case $fs in
9fa0|62656572|27e0eb|63677270|64626720|73636673|74726163|62656570|cafe4a11|6165676c|de5e81e4|19800202)
	limit=$2 exact=0 ;;
*)
	limit=${st#* } exact=1
	limit=${limit%% *} ;;
esac
echo "$st $exact"
exec head -c "$limit" <&3`

// writeScript writes stdin to a temporary file next to the target and renames it into place only
// once the size matches, so a cut-short upload never replaces the old file. A device, FIFO or
// socket at the path is refused rather than replaced. Every way out first reads what is left of
// the content: Kubernetes (containerd) never reports the exit of an exec whose input was not
// read to its end, so a refusal would hang until the caller gives up.
const writeScript = `dir=$1 p=$2 tmp=$3 mode=$4 size=$5
trap 'rm -f -- "$tmp"; cat >/dev/null' EXIT
[ -d "$p" ] && exit 91
[ -e "$p" ] && [ ! -f "$p" ] && [ ! -L "$p" ] && exit 95
mkdir -p -- "$dir" || exit 1
true > "$tmp" || exit 96
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

// listScript lists a directory in up to three groups, one per glob that covers the names but .
// and .. (*, .[!.]*, ..?*). Each group is its number of entries, their names each ended by a NUL
// byte (names may hold any byte but NUL and /), then one "MODE_HEX SIZE MTIME" line per entry in
// the same order. Names never pass through stat's output, so no name can be mistaken for a
// separator. Each glob expands once into the arguments (collecting them one by one would be
// quadratic: 20k entries took over 30 s), and xargs hands them to stat in batches that fit the
// kernel's argument limit. A glob that matched nothing stays as its own text, which no entry then
// has. An entry that vanishes between the glob and stat makes stat fail, and the listing is retried.
const listScript = `[ -e "$1" ] || exit 90
[ -d "$1" ] || exit 92
max=$2
cd -- "$1" || exit 1
for g in '*' '.[!.]*' '..?*'; do
	set -- $g
	if [ "$#" = 1 ] && [ "$1" = "$g" ] && [ ! -e "$1" ] && [ ! -L "$1" ]; then continue; fi
	[ "$#" -le "$max" ] || exit 97
	echo "$#"
	printf '%s\0' "$@"
	printf '%s\0' "$@" | xargs -0 stat -c '%f %s %Y' -- || exit 1
done`

// maxListing bounds ListDir's output (names and metadata): MaxListEntries of long names.
const maxListing = 32 << 20

// sandboxPath checks and normalises a path inside the sandbox. A relative path is relative to the
// sandbox's working directory; it gets a "./" prefix so no path can be read as an option.
func sandboxPath(op, p string) (string, error) {
	if p == "" || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%s: invalid path %q", op, p)
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

// sandboxPath is the package function's check, its error prefixed with the driver's name.
func (r *Runner) sandboxPath(op, p string) (string, error) {
	clean, err := sandboxPath(op, p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.name, err)
	}
	return clean, nil
}

// exitSentinels are the exit codes the scripts report a known condition with.
var exitSentinels = map[int]error{
	exitNotFound:   runtimes.ErrFileNotFound,
	exitIsDir:      runtimes.ErrIsDirectory,
	exitNotDir:     runtimes.ErrNotDirectory,
	exitNotEmpty:   runtimes.ErrDirectoryNotEmpty,
	exitNotRegular: runtimes.ErrNotRegular,
	exitTooMany:    runtimes.ErrTooManyEntries,
}

// fileErr maps a script's exit code to the runtimes sentinels, then its stderr (see refusal),
// keeping the stderr otherwise.
func (r *Runner) fileErr(op, p string, run scriptResult) error {
	switch run.code {
	case 0:
		return nil
	case exitShort:
		return fmt.Errorf("%s: %s %q: the content did not have the announced size", r.name, op, p)
	}
	if sentinel, ok := exitSentinels[run.code]; ok {
		return fmt.Errorf("%s: %s %q: %w", r.name, op, p, sentinel)
	}
	msg := strings.TrimSpace(string(run.stderr))
	if msg == "" {
		msg = "no message"
	}
	if sentinel := refusal(msg, run.code == exitNoCreate || op == "remove file"); sentinel != nil {
		return fmt.Errorf("%s: %s %q: %w: %s", r.name, op, p, sentinel, msg)
	}
	return fmt.Errorf("%s: %s %q: exit status %d: %s", r.name, op, p, run.code, msg)
}

// refusal recognises, in the message of a command that failed inside the sandbox, the kernel
// refusing the operation: the strerror(3) texts of glibc, musl and busybox for EROFS, ENOSPC,
// EDQUOT, EACCES and EPERM. With pathExists (the script checked the path, or its directory,
// exists), ENOENT is a refusal too: /proc and /sys answer it to creating or removing entries.
// Nil when the message names none of them.
func refusal(msg string, pathExists bool) error {
	lower := strings.ToLower(msg)
	has := func(texts ...string) bool {
		for _, t := range texts {
			if strings.Contains(lower, t) {
				return true
			}
		}
		return false
	}
	switch {
	case has("read-only file system"):
		return runtimes.ErrReadOnly
	case has("no space left on device", "quota exceeded"):
		return runtimes.ErrNoSpace
	case has("permission denied", "operation not permitted"):
		return runtimes.ErrPermission
	case pathExists && has("no such file or directory", "nonexistent directory"):
		return runtimes.ErrPermission
	}
	return nil
}

// WriteFile stores content at path; see runtimes.Interactive for the contract.
func (r *Runner) WriteFile(ctx context.Context, id, p string, mode fs.FileMode, content io.Reader, size int64) error {
	p, err := r.sandboxPath("write file", p)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("%s: write file %q: negative size %d", r.name, p, size)
	}
	if p == "/" || p == "." {
		return fmt.Errorf("%s: write file %q: %w", r.name, p, runtimes.ErrIsDirectory)
	}
	if mode == 0 {
		mode = 0o644
	}
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	tmp := path.Join(dir, "."+base[:min(len(base), 100)]+".upload-"+randSuffix())
	args := []string{dir, p, tmp, strconv.FormatUint(uint64(mode.Perm()), 8), strconv.FormatInt(size, 10)}
	feed := func(w io.Writer) error { return copyExactly(w, content, size) }
	run, err := r.runScript(ctx, "write file", id, writeScript, args, feed, 0)
	if err != nil {
		return err
	}
	return r.fileErr("write file", p, run)
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
func (r *Runner) ReadFile(ctx context.Context, id, p string) (io.ReadCloser, runtimes.FileInfo, error) {
	p, err := r.sandboxPath("read file", p)
	if err != nil {
		return nil, runtimes.FileInfo{}, err
	}
	pr, pw := io.Pipe()
	proc, err := r.start(ctx, "read file", id, Command{
		Argv: []string{"/bin/sh", "-c", readScript, "sh", p, strconv.Itoa(runtimes.PseudoFileLimit)},
	}, "", pw, nil)
	if err != nil {
		return nil, runtimes.FileInfo{}, err
	}
	f := &fileReader{p: proc, path: p, pr: pr, br: bufio.NewReader(pr)}
	// When ctx ends the helper goes at once, even while the caller is stuck elsewhere (writing
	// to a client that stopped reading) and has not closed the reader yet.
	f.stopCtx = context.AfterFunc(ctx, proc.release)
	go f.pump(ctx, pw)

	// The header is a stat line from inside the sandbox: bounded, so a hostile sandbox printing
	// endless bytes without a newline cannot grow our memory.
	header, err := readHeader(f.br)
	if err != nil {
		// Nothing came out: the script stopped before the content. Its exit code says why.
		f.Close()
		var ended *scriptEnded
		if errors.As(err, &ended) {
			return nil, runtimes.FileInfo{}, r.fileErr("read file", p, ended.run)
		}
		if errors.Is(err, errMalformedHeader) {
			err = fmt.Errorf("%s: read file %q: %w", r.name, p, err)
		}
		return nil, runtimes.FileInfo{}, err
	}
	info, exact, err := parseReadHeader(strings.TrimSuffix(header, "\n"))
	if err != nil {
		f.Close()
		return nil, runtimes.FileInfo{}, fmt.Errorf("%s: read file %q: %w", r.name, p, err)
	}
	info.Name, info.Path = path.Base(p), p
	f.left = runtimes.PseudoFileLimit
	if exact {
		f.left = info.Size
	} else {
		info.Size = -1
	}
	return f, info, nil
}

// parseReadHeader reads readScript's header: a stat line, then 1 when its size is the content's
// length or 0 for a pseudo file.
func parseReadHeader(line string) (runtimes.FileInfo, bool, error) {
	statLine, exact, ok := cutLast(line, ' ')
	if !ok || (exact != "0" && exact != "1") {
		return runtimes.FileInfo{}, false, fmt.Errorf("unexpected read header %q", line)
	}
	info, err := parseStatLine(statLine)
	if err != nil {
		return runtimes.FileInfo{}, false, err
	}
	if info.Size < 0 {
		return runtimes.FileInfo{}, false, fmt.Errorf("negative size in read header %q", line)
	}
	return info, exact == "1", nil
}

// cutLast slices s around the last sep.
func cutLast(s string, sep byte) (before, after string, found bool) {
	if i := strings.LastIndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// fileReader streams a file out of the exec's stdout, never more than left bytes.
type fileReader struct {
	p       *process
	path    string
	pr      *io.PipeReader
	br      *bufio.Reader
	left    int64
	stopCtx func() bool
}

// scriptEnded is the pipe's error when the script ended without success: it carries the result
// so the exit code can be mapped.
type scriptEnded struct{ run scriptResult }

func (e *scriptEnded) Error() string { return fmt.Sprintf("exit status %d", e.run.code) }

// pump demultiplexes the stream into the pipe and ends the pipe with the script's outcome.
func (f *fileReader) pump(ctx context.Context, pw *io.PipeWriter) {
	stderr := &limitedBuffer{max: stderrKeep, truncate: true}
	if err := f.p.pump(stderr); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		pw.CloseWithError(fmt.Errorf("%s: read file %q: %w", f.p.r.name, f.path, err))
		return
	}
	code, err := f.p.wait(f.p.ctx, ctx.Done())
	switch {
	case err != nil:
		pw.CloseWithError(err)
	case code != 0:
		pw.CloseWithError(&scriptEnded{run: scriptResult{code: code, stderr: stderr.Bytes()}})
	default:
		pw.Close()
	}
}

// Read returns the content, and io.EOF once the bound is reached whatever the sandbox still sends.
func (f *fileReader) Read(b []byte) (int, error) {
	if f.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > f.left {
		b = b[:f.left]
	}
	n, err := f.br.Read(b)
	f.left -= int64(n)
	var ended *scriptEnded
	if errors.As(err, &ended) {
		err = f.p.r.fileErr("read file", f.path, ended.run)
	}
	return n, err
}

// Close stops the transfer: the helper ends by itself (it has sent its last byte) or is killed.
func (f *fileReader) Close() error {
	f.stopCtx()
	f.pr.Close()
	f.p.release()
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
func (r *Runner) RemoveFile(ctx context.Context, id, p string, recursive bool) error {
	p, err := r.sandboxPath("remove file", p)
	if err != nil {
		return err
	}
	if p == "/" || p == "." {
		return fmt.Errorf("%s: remove file: refusing to remove %q", r.name, p)
	}
	rec := "0"
	if recursive {
		rec = "1"
	}
	run, err := r.runScript(ctx, "remove file", id, removeScript, []string{p, rec}, nil, 0)
	if err != nil {
		return err
	}
	return r.fileErr("remove file", p, run)
}

// ListDir describes the entries of a directory; see runtimes.Interactive for the contract.
func (r *Runner) ListDir(ctx context.Context, id, p string) ([]runtimes.FileInfo, error) {
	p, err := r.sandboxPath("list dir", p)
	if err != nil {
		return nil, err
	}
	args := []string{p, strconv.Itoa(runtimes.MaxListEntries)}
	for attempt := 0; ; attempt++ {
		run, err := r.runScript(ctx, "list dir", id, listScript, args, nil, maxListing)
		if errors.Is(err, errOutputTooLarge) {
			return nil, fmt.Errorf("%s: list dir %q: more than %d MiB of entries: %w", r.name, p, maxListing>>20, runtimes.ErrTooManyEntries)
		}
		if err != nil {
			return nil, err
		}
		if run.code == exitNotFound || run.code == exitNotDir || run.code == exitTooMany {
			return nil, r.fileErr("list dir", p, run)
		}
		infos, perr := parseListing(p, run.stdout)
		if run.code == 0 && perr == nil {
			return infos, nil
		}
		if errors.Is(perr, runtimes.ErrTooManyEntries) {
			return nil, fmt.Errorf("%s: list dir %q: %w", r.name, p, perr)
		}
		// An entry vanished between the glob and stat (the directory is changing): list again.
		if attempt == 2 {
			if run.code != 0 {
				return nil, r.fileErr("list dir", p, run)
			}
			return nil, fmt.Errorf("%s: list dir %q: %w", r.name, p, perr)
		}
	}
}

// maxHeader bounds the stat line ReadFile reads before the content.
const maxHeader = 4096

// errMalformedHeader: what came before a file's content is not readScript's header.
var errMalformedHeader = errors.New("malformed header from the sandbox")

func readHeader(br *bufio.Reader) (string, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxHeader {
			return "", errMalformedHeader
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return string(line), err
	}
}

// parseListing reads listScript's output: groups of a count line, that many NUL-ended names and
// as many stat lines. It refuses more than runtimes.MaxListEntries entries in all.
func parseListing(dir string, out []byte) ([]runtimes.FileInfo, error) {
	var infos []runtimes.FileInfo
	for rest := out; len(rest) > 0; {
		countLine, after, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, errors.New("listing ends early")
		}
		rest = after
		n, err := strconv.Atoi(string(countLine))
		// The count comes from inside the sandbox, whose user may have replaced /bin/sh: never
		// trust it further than the bytes that follow (each entry is at least a name byte, a NUL
		// and a stat line of six bytes).
		if err != nil || n < 1 || n > len(rest)/8 {
			return nil, fmt.Errorf("unexpected listing count %q", countLine)
		}
		if len(infos)+n > runtimes.MaxListEntries {
			return nil, fmt.Errorf("more than %d entries: %w", runtimes.MaxListEntries, runtimes.ErrTooManyEntries)
		}
		group := len(infos)
		for range n {
			name, after, ok := bytes.Cut(rest, []byte{0})
			if !ok || len(name) == 0 {
				return nil, errors.New("listing ends early")
			}
			infos = append(infos, runtimes.FileInfo{Name: string(name), Path: path.Join(dir, string(name))})
			rest = after
		}
		for i := group; i < len(infos); i++ {
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
	}
	if infos == nil {
		infos = []runtimes.FileInfo{}
	}
	return infos, nil
}
