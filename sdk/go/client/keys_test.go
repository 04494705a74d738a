package client_test

import (
	"errors"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/insien/orchestrator/sdk/go/client"
)

// TestKeys: with a Clerk session a user mints a key, sees it masked in the list, uses it within
// its scopes, and revokes it, after which it stops working.
func TestKeys(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	session, err := client.New(os.Getenv("INSIEN_TEST_SESSION_TOKEN"))
	if err != nil {
		t.Fatal(err)
	}

	me, err := session.Me(ctx)
	if err != nil || me.Id == nil || me.Email == nil {
		t.Fatalf("Me = %+v, %v", me, err)
	}

	expires := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	key, err := session.Keys.Create(ctx, "sdk read-only", client.WithScopes("sandboxes:read"), client.WithExpiry(expires))
	if err != nil {
		t.Fatalf("Keys.Create: %v", err)
	}
	if key.Key == nil || *key.Key == "" || key.Id == nil || !slices.Equal(*key.Scopes, []string{"sandboxes:read"}) ||
		key.ExpiresAt == nil || !key.ExpiresAt.Equal(expires) {
		t.Fatalf("Keys.Create = %+v", key)
	}
	id := key.Id.String()

	keys, err := session.Keys.List(ctx)
	if err != nil {
		t.Fatalf("Keys.List: %v", err)
	}
	found := false
	for _, k := range keys {
		if k.Id.String() == id {
			found = true
			if k.Key != nil || k.LastFour == nil || *k.Name != "sdk read-only" {
				t.Errorf("listed %+v: want it masked, with its name", k)
			}
		}
	}
	if !found {
		t.Fatalf("Keys.List has no key %s", id)
	}

	readOnly, err := client.New(*key.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range readOnly.Sandboxes.List(ctx, client.ListSandboxesOptions{Limit: 1}) {
		if err != nil {
			t.Errorf("listing with a read key: %v", err)
		}
	}
	_, err = readOnly.Sandboxes.Create(ctx, client.CreateSandboxParams{})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden {
		t.Errorf("creating with a read key: %v, want 403", err)
	}

	if err := session.Keys.Revoke(ctx, id); err != nil {
		t.Fatalf("Keys.Revoke: %v", err)
	}
	if err := session.Keys.Revoke(ctx, id); err != nil {
		t.Errorf("Keys.Revoke again: %v, want none (idempotent)", err)
	}
	_, err = readOnly.Sandboxes.Get(ctx, id)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Errorf("using a revoked key: %v, want 401", err)
	}
	err = session.Keys.Revoke(ctx, "00000000-0000-4000-8000-000000000000")
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "not_found" {
		t.Errorf("revoking an unknown key: %v, want 404 not_found", err)
	}
}

// TestNew: where the client takes its endpoint and credential from.
func TestNew(t *testing.T) {
	// Not parallel: it changes the environment.
	t.Setenv(client.EnvAPIKey, "")
	if _, err := client.New(""); err == nil {
		t.Error("New without any credential succeeded")
	}
	t.Setenv(client.EnvAPIKey, "isk_from_env")
	t.Setenv(client.EnvAPIURL, "https://insien.example.com/")
	c, err := client.New("")
	if err != nil || c.BaseURL() != "https://insien.example.com" {
		t.Errorf("New from the environment: %v, base %q", err, c.BaseURL())
	}
	c, err = client.New("isk_x", client.WithBaseURL("http://other:3000"))
	if err != nil || c.BaseURL() != "http://other:3000" {
		t.Errorf("WithBaseURL: %v, base %q", err, c.BaseURL())
	}
	if _, err := client.New("isk_x", client.WithBaseURL("ftp://nope")); err == nil {
		t.Error("New accepted an ftp base URL")
	}
	t.Setenv(client.EnvAPIURL, "")
	if c, err := client.New("isk_x"); err != nil || c.BaseURL() != client.DefaultBaseURL {
		t.Errorf("New without a URL: %v, base %q, want %s", err, c.BaseURL(), client.DefaultBaseURL)
	}
}
