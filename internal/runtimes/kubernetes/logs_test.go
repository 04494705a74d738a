package kubernetes

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestSinceFilter(t *testing.T) {
	since := time.Date(2026, 12, 2, 3, 0, 0, 500_000_000, time.UTC)
	log := "2026-12-02T03:00:00.100000000Z early\n" +
		"2026-12-02T03:00:00.500000000Z at\n" +
		"2026-12-02T03:00:00.900000000Z late\n" +
		"2026-12-02T03:00:01.000000000Z no newline"
	tests := []struct {
		name       string
		keepStamps bool
		want       string
	}{
		{"without stamps", false, "at\nlate\nno newline"},
		{"with stamps", true, "2026-12-02T03:00:00.500000000Z at\n2026-12-02T03:00:00.900000000Z late\n2026-12-02T03:00:01.000000000Z no newline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			f := &sinceFilter{since: since, keepStamps: tt.keepStamps}
			if err := f.copy(&out, strings.NewReader(log)); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}
