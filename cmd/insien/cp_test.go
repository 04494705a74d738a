package main

import "testing"

// TestParseLocation is how cp tells a sandbox's file from a local one, as scp does.
func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		arg      string
		want     location
		remoteOK bool // for a sandbox's file: a path the API takes
	}{
		{"./f", location{path: "./f"}, false},
		{"-", location{path: "-"}, false},
		{"dir/a:b", location{path: "dir/a:b"}, false}, // a colon after a slash is part of a local name
		{":/tmp/f", location{path: ":/tmp/f"}, false},
		{"4c43cea5-67e1-449d-a4f9-a633473b1635:/tmp/f", location{sandbox: "4c43cea5-67e1-449d-a4f9-a633473b1635", path: "/tmp/f"}, true},
		{"id:/tmp/", location{sandbox: "id", path: "/tmp/"}, true},
		{"id:/", location{sandbox: "id", path: "/"}, true},
		{"id:tmp/f", location{sandbox: "id", path: "tmp/f"}, false},
		{"id:/tmp/../etc/passwd", location{sandbox: "id", path: "/tmp/../etc/passwd"}, false},
		{"id:/tmp//f", location{sandbox: "id", path: "/tmp//f"}, false},
		{"id:", location{sandbox: "id", path: ""}, false},
	} {
		got := parseLocation(tc.arg)
		if got != tc.want {
			t.Errorf("parseLocation(%q) = %+v, want %+v", tc.arg, got, tc.want)
		}
		if got.sandbox != "" && cleanAbsolute(got.path) != tc.remoteOK {
			t.Errorf("cleanAbsolute(%q) = %v, want %v", got.path, !tc.remoteOK, tc.remoteOK)
		}
	}
}

// TestParseSeconds is how --timeout and `sandbox timeout` read a duration.
func TestParseSeconds(t *testing.T) {
	for in, want := range map[string]int{"600": 600, "90s": 90, "10m": 600, "1h30m": 5400, "0": -1, "-5": -1, "1.5s": -1, "soon": -1, "500ms": -1} {
		got, err := parseSeconds(in)
		if want < 0 && err == nil || want >= 0 && (err != nil || got != want) {
			t.Errorf("parseSeconds(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
