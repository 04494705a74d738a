package shell

import (
	"bufio"
	"strings"
	"testing"
)

// A sandbox's user may replace /bin/sh: what the file scripts print is untrusted input.
func TestHostileSandboxOutput(t *testing.T) {
	t.Run("a listing count larger than the listing is refused", func(t *testing.T) {
		for _, out := range []string{"2000000000\n", "3\na\x00b\x00", "-1\n"} {
			if _, err := parseListing("/", []byte(out)); err == nil {
				t.Errorf("parseListing(%q) succeeded", out)
			}
		}
	})
	t.Run("an endless header is cut off", func(t *testing.T) {
		endless := bufio.NewReader(strings.NewReader(strings.Repeat("x", 1<<20)))
		if _, err := readHeader(endless); err == nil {
			t.Fatal("readHeader accepted a megabyte without a newline")
		}
		line, err := readHeader(bufio.NewReader(strings.NewReader("ok line\nbody")))
		if err != nil || line != "ok line\n" {
			t.Fatalf("readHeader = %q, %v", line, err)
		}
	})
}
