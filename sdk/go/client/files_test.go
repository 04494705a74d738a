package client_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/insien/orchestrator/sdk/go/client"
)

// TestFilesRoundTrip: what is written is read back byte for byte, whatever the bytes.
func TestFilesRoundTrip(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	sb := newSandbox(t, c, client.CreateSandboxParams{})
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	big := make([]byte, 3<<20+17)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(big)
	tests := []struct {
		name    string
		path    string
		content []byte
		stream  bool // send through a reader that cannot be rewound
	}{
		{name: "empty", path: "/tmp/empty", content: []byte{}},
		{name: "text", path: "/tmp/text.txt", content: []byte("hello\nworld\n")},
		{name: "every byte value", path: "/tmp/bytes.bin", content: every},
		{name: "invalid UTF-8 and NULs", path: "/tmp/nul.bin", content: []byte{0, 0xff, 0xfe, 0, '\n', 0xc3}},
		{name: "3 MiB random, streamed", path: "/tmp/deep/er/big.bin", content: big, stream: true},
		{name: "name with spaces and unicode", path: "/tmp/a dir/ünïcode file", content: []byte("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			var r io.Reader = bytes.NewReader(tt.content)
			if tt.stream {
				r = io.MultiReader(r)
			}
			w, err := sb.Files.Write(ctx, tt.path, r)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if *w.Path != tt.path || *w.Size != len(tt.content) || *w.Mode != "0644" {
				t.Errorf("Write = %s %d %s", *w.Path, *w.Size, *w.Mode)
			}
			rc, err := sb.Files.Read(ctx, tt.path)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			if !bytes.Equal(got, tt.content) {
				t.Errorf("read %d bytes back, want the %d written (equal: %v)", len(got), len(tt.content), bytes.Equal(got, tt.content))
			}
		})
	}
}

// TestFiles: listing, modes, removal, and the errors of each.
func TestFiles(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	sb := newSandbox(t, c, client.CreateSandboxParams{})
	ctx := testContext(t)
	if _, err := sb.Files.WriteMode(ctx, "/tmp/work/run.sh", bytes.NewReader([]byte("#!/bin/sh\necho ran\n")), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Files.Write(ctx, "/tmp/work/sub/data", bytes.NewReader([]byte("12345"))); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Exec(ctx, []string{"/tmp/work/run.sh"})
	if err != nil || res.Stdout != "ran\n" {
		t.Fatalf("running the written script: %+v, %v", res, err)
	}

	entries, err := sb.Files.List(ctx, "/tmp/work")
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		name, typ, mode string
		dir             bool
	}
	var got []entry
	for _, e := range entries {
		got = append(got, entry{*e.Name, string(*e.Type), *e.Mode, *e.IsDir})
	}
	want := []entry{{"run.sh", "file", "0755", false}, {"sub", "dir", "0755", true}}
	if len(got) != len(want) || got[0] != want[0] || got[1].name != want[1].name || got[1].typ != "dir" || !got[1].dir {
		t.Errorf("List = %+v, want %+v", got, want)
	}

	tests := []struct {
		name       string
		call       func() error
		wantStatus int
		wantCode   string
	}{
		{name: "read a missing file", wantStatus: http.StatusNotFound, wantCode: "file_not_found", call: func() error {
			_, err := sb.Files.Read(ctx, "/tmp/work/missing")
			return err
		}},
		{name: "read a directory", wantStatus: http.StatusConflict, wantCode: "path_is_directory", call: func() error {
			_, err := sb.Files.Read(ctx, "/tmp/work")
			return err
		}},
		{name: "relative path", wantStatus: http.StatusBadRequest, wantCode: "validation_failed", call: func() error {
			_, err := sb.Files.Write(ctx, "tmp/x", bytes.NewReader(nil))
			return err
		}},
		{name: "remove a directory with content", wantStatus: http.StatusConflict, wantCode: "directory_not_empty", call: func() error {
			return sb.Files.Remove(ctx, "/tmp/work/sub")
		}},
		{name: "list a missing directory", wantStatus: http.StatusNotFound, wantCode: "file_not_found", call: func() error {
			_, err := sb.Files.List(ctx, "/tmp/nowhere")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var apiErr *client.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.wantStatus || apiErr.Code != tt.wantCode || apiErr.RequestID == "" {
				t.Errorf("error %v, want %d %s with a request id", err, tt.wantStatus, tt.wantCode)
			}
		})
	}

	if err := sb.Files.Remove(ctx, "/tmp/work/run.sh"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := sb.Files.RemoveAll(ctx, "/tmp/work/sub"); err != nil {
		t.Fatalf("RemoveAll: %v", err)
	}
	if entries, err := sb.Files.List(ctx, "/tmp/work"); err != nil || len(entries) != 0 {
		t.Errorf("after removing: %v, %v; want an empty directory", entries, err)
	}
}
