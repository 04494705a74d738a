package client_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/insien/orchestrator/sdk/go/client"
)

// TestMain refuses to run without a service: these tests and examples drive the real
// orchestrator, which the repository's sdk/TestGoSDK starts and points them at.
func TestMain(m *testing.M) {
	for _, name := range []string{client.EnvAPIURL, client.EnvAPIKey, "INSIEN_TEST_SESSION_TOKEN"} {
		if os.Getenv(name) == "" {
			fmt.Fprintf(os.Stderr, "$%s is not set: the Go SDK's tests run against the real service; "+
				"from the repository's root run `go tool task test -- ./sdk/ -run TestGoSDK`\n", name)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

// newClient is a client for the test user, from the environment like a user's program.
func newClient(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New("", opts...)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	return c
}

// testContext ends with the test, or after a minute.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newSandbox creates a sandbox that the test's cleanup deletes.
func newSandbox(t *testing.T, c *client.Client, p client.CreateSandboxParams) *client.Sandbox {
	t.Helper()
	sb, err := c.Sandboxes.Create(testContext(t), p)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sb.Delete(ctx); err != nil {
			t.Errorf("Delete %s: %v", sb.ID, err)
		}
	})
	return sb
}

// ptr is &v, for the generated types' optional fields.
func ptr[T any](v T) *T { return &v }
