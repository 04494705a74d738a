package shell

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/insien/orchestrator/internal/runtimes"
)

// What the file helpers print comes from inside the sandbox, whose user may have replaced /bin/sh
// and every tool: these parsers must never panic, never trust a count beyond the bytes that back
// it, and read back exactly what a well-behaved helper prints.

func FuzzSandboxPath(f *testing.F) {
	for _, seed := range []string{"/", ".", "..", "/dev/zero", "/proc/cpuinfo", "-rf", "--", "a/../../b", "/a//b/", "x\x00y", "", "./-n", "~"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := sandboxPath("test", p)
		if p == "" || strings.ContainsRune(p, 0) {
			if err == nil {
				t.Fatalf("sandboxPath(%q) = %q, want an error", p, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("sandboxPath(%q): %v", p, err)
		}
		switch {
		case strings.HasPrefix(got, "-"):
			t.Fatalf("sandboxPath(%q) = %q reads as an option", p, got)
		case path.IsAbs(got) != path.IsAbs(p):
			t.Fatalf("sandboxPath(%q) = %q changed absoluteness", p, got)
		case !path.IsAbs(got) && got != "." && !strings.HasPrefix(got, "./"):
			t.Fatalf("sandboxPath(%q) = %q: a relative path without ./", p, got)
		case path.Clean(got) != path.Clean(p):
			t.Fatalf("sandboxPath(%q) = %q names another file", p, got)
		}
	})
}

func FuzzParseStatLine(f *testing.F) {
	for _, seed := range []string{"81a4 1048576 1700000000", "41ed 4096 0", "a1ff 8 1", "2190 0 5", "ffffffff -1 -1", "81a4 1 2 3", "", "zz 1 1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		info, err := parseStatLine(line)
		if err != nil {
			return
		}
		fields := strings.Fields(line)
		if size, _ := strconv.ParseInt(fields[1], 10, 64); len(fields) != 3 || info.Size != size {
			t.Fatalf("parseStatLine(%q).Size = %d", line, info.Size)
		}
		if info.IsDir != info.Mode.IsDir() {
			t.Fatalf("parseStatLine(%q): IsDir %v, mode %v", line, info.IsDir, info.Mode)
		}
	})
}

func FuzzParseListing(f *testing.F) {
	f.Add([]byte("2\na\x00b c\x0081a4 1 2\n41ed 4096 3\n1\n.h\x00a1ff 3 4\n"))
	f.Add([]byte("2000000000\n"))
	f.Add([]byte("3\na\x00b\x00"))
	f.Add([]byte("-1\n"))
	f.Add([]byte(""))
	f.Add([]byte("1\n\x0081a4 1 2\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		infos, err := parseListing("/d", out)
		if err != nil {
			return
		}
		if len(infos) > runtimes.MaxListEntries {
			t.Fatalf("%d entries", len(infos))
		}
		for _, fi := range infos {
			if fi.Name == "" || strings.ContainsRune(fi.Name, 0) || fi.Path != path.Join("/d", fi.Name) {
				t.Fatalf("entry %+v", fi)
			}
		}
	})
}

// FuzzParseListingRoundTrip: any set of names (no NUL, no /, not . or ..) printed the way
// listScript prints them is read back whole and in order.
func FuzzParseListingRoundTrip(f *testing.F) {
	f.Add("a", "b\nc", ".hidden", uint8(3))
	f.Add("-rf", "..x", " ", uint8(1))
	f.Fuzz(func(t *testing.T, a, b, c string, groups uint8) {
		var names []string
		for _, n := range []string{a, b, c} {
			if n != "" && n != "." && n != ".." && !strings.ContainsAny(n, "\x00/") {
				names = append(names, n)
			}
		}
		var out bytes.Buffer
		// One group per name, or all in one: the parser takes any grouping.
		per := max(1, int(groups%3))
		for i := 0; i < len(names); i += per {
			group := names[i:min(i+per, len(names))]
			fmt.Fprintf(&out, "%d\n", len(group))
			for _, n := range group {
				out.WriteString(n + "\x00")
			}
			for j := range group {
				fmt.Fprintf(&out, "81a4 %d 1700000000\n", i+j)
			}
		}
		infos, err := parseListing("/d", out.Bytes())
		if err != nil || len(infos) != len(names) {
			t.Fatalf("parseListing of %q: %d entries, %v", names, len(infos), err)
		}
		for i, fi := range infos {
			if fi.Name != names[i] || fi.Size != int64(i) {
				t.Fatalf("entry %d = %+v, want %q", i, fi, names[i])
			}
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("81a4 12 1700000000 1\ncontent"))
	f.Add([]byte(strings.Repeat("x", 5000)))
	f.Add([]byte(""))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		line, err := readHeader(bufio.NewReaderSize(bytes.NewReader(in), 16))
		if len(line) > maxHeader {
			t.Fatalf("a header of %d bytes", len(line))
		}
		if err == nil && (!strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 || !bytes.HasPrefix(in, []byte(line))) {
			t.Fatalf("readHeader(%q) = %q", in, line)
		}
		if err != nil && err != io.EOF && !strings.Contains(err.Error(), "malformed") {
			t.Fatalf("readHeader(%q): %v", in, err)
		}
	})
}

func FuzzParseReadHeader(f *testing.F) {
	for _, seed := range []string{"81a4 12 1700000000 1", "81a4 0 1 0", "81a4 -5 1 1", "81a4 1 1 2", "81a4 1 1", "", " 1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		info, exact, err := parseReadHeader(line)
		if err != nil {
			return
		}
		if info.Size < 0 || (!strings.HasSuffix(line, " 1") && exact) || (!strings.HasSuffix(line, " 0") && !exact) {
			t.Fatalf("parseReadHeader(%q) = %+v, exact %v", line, info, exact)
		}
	})
}

// FuzzPidLine: the wrapper's first line is taken off whatever the chunking, and nothing else is.
func FuzzPidLine(f *testing.F) {
	f.Add([]byte("123\nhello\n"), uint8(2))
	f.Add([]byte("!cwd\n"), uint8(1))
	f.Add([]byte("not a pid\nrest"), uint8(5))
	f.Add([]byte(strings.Repeat("9", 40)), uint8(7))
	f.Add([]byte(strings.Repeat("0", 28)+"100000\n"), uint8(255)) // a line past the bound, whole in one chunk
	f.Fuzz(func(t *testing.T, out []byte, step uint8) {
		var got bytes.Buffer
		started := 0
		p := newPidLine(&got, func() { started++ })
		n := max(1, int(step))
		for i := 0; i < len(out); i += n {
			if _, err := p.Write(out[i:min(i+n, len(out))]); err != nil {
				t.Fatal(err)
			}
		}
		p.finish()
		first, rest, ok := bytes.Cut(out, []byte("\n"))
		line := string(bytes.TrimSpace(first))
		isPid := ok && len(first) <= maxPidLine && p.pid() > 0 && fmt.Sprint(p.pid()) == strings.TrimLeft(line, "+0")
		switch {
		case isPid || (ok && len(first) <= maxPidLine && line == noWorkDirLine):
			if !bytes.Equal(got.Bytes(), rest) {
				t.Fatalf("after the line %q: %q, want %q", first, got.Bytes(), rest)
			}
		case !bytes.Equal(got.Bytes(), out):
			t.Fatalf("%q was not the wrapper's line, yet the output became %q", out, got.Bytes())
		}
		if (started == 1) != (p.pid() > 0) || started > 1 {
			t.Fatalf("onStart called %d times for pid %d", started, p.pid())
		}
	})
}
