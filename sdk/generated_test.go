// Package sdk_test keeps the clients in sdk/ in step with openapi.yaml: they are separate modules
// (importable without the server's dependencies), so the checks that need the server's tools run
// from here.
package sdk_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGoSDKIsGenerated fails when sdk/go/api/api.gen.go is not what oapi-codegen makes of today's
// openapi.yaml (run `go tool task generate`), or when the SDK module does not build and vet.
func TestGoSDKIsGenerated(t *testing.T) {
	fresh := filepath.Join(t.TempDir(), "api.gen.go")
	gen := exec.Command("go", "tool", "oapi-codegen", "-config", "sdk/go/api/oapi-codegen.yaml", "-o", fresh, "openapi.yaml")
	gen.Dir = ".."
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, out)
	}
	want, err := os.ReadFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("go/api/api.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("sdk/go/api/api.gen.go is stale: openapi.yaml changed since it was generated; run `go tool task generate`")
	}
	for _, args := range [][]string{{"build", "./..."}, {"vet", "./..."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = "go"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("go %v in sdk/go: %v\n%s", args, err, out)
		}
	}
}
