package interact

import (
	"fmt"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/", true}, {"/tmp/a.txt", true}, {"/a..b/c", true}, {"/tmp/.hidden", true},
		{"", false}, {"tmp/a", false}, {".", false}, {"..", false}, {"/a/../b", false}, {"/..", false},
		{"/tmp/", false}, {"//tmp", false}, {"/tmp/./a", false}, {"/tmp/a\x00b", false},
	}
	for _, tt := range tests {
		if err := CheckPath(tt.path); (err == nil) != tt.ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
		}
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		raw  string
		want string // octal, or "error"
	}{
		{"", "0"}, {"0644", "644"}, {"755", "755"}, {"0001", "1"}, {"0777", "777"},
		{"0", "error"}, {"0000", "error"}, {"0999", "error"}, {"4755", "error"}, {"1000", "error"},
		{"-1", "error"}, {"0x1ff", "error"}, {"644 ", "error"}, {"00644", "error"},
	}
	for _, tt := range tests {
		mode, err := ParseMode(tt.raw)
		got := fmt.Sprintf("%o", uint32(mode))
		if err != nil {
			got = "error"
		}
		if got != tt.want {
			t.Errorf("ParseMode(%q) = %s, want %s", tt.raw, got, tt.want)
		}
	}
}

// TestLineWriter: output is cut into lines whatever the write boundaries, the engine's
// timestamp is taken off, and an endless line is cut at maxLogLine.
func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{stream: "stdout", emit: func(l LogLine) error {
		at := "-"
		if !l.At.IsZero() {
			at = l.At.Format("15:04:05.000")
		}
		got = append(got, at+" "+string(l.Text))
		return nil
	}}
	for _, chunk := range []string{"2026-01-02T15:04:05.123456789Z one\n2026-01-02T15:04:06Z t", "wo\n", "no timestamp\n", "2026-01-02T15:04:07Z \n", "tail"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	want := []string{"15:04:05.123 one", "15:04:06.000 two", "- no timestamp", "15:04:07.000 ", "- tail"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", got, want)
	}
	got = nil
	_, _ = w.Write([]byte(strings.Repeat("x", maxLogLine+10) + "\n"))
	if len(got) != 2 || len(got[0]) != len("- ")+maxLogLine || got[1] != "- xxxxxxxxxx" {
		t.Fatalf("a long line became %d lines", len(got))
	}
}
