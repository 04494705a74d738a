package apikeys_test

import (
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/identity/apikeys"
)

// TestKeyState: revocation wins over expiry, and a key expires at its expires_at, not after.
func TestKeyState(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-time.Minute), now.Add(time.Minute)
	tests := []struct {
		name string
		key  apikeys.Key
		want string
	}{
		{"no expiry", apikeys.Key{}, apikeys.StateActive},
		{"expires later", apikeys.Key{ExpiresAt: &future}, apikeys.StateActive},
		{"expires now", apikeys.Key{ExpiresAt: &now}, apikeys.StateExpired},
		{"expired", apikeys.Key{ExpiresAt: &past}, apikeys.StateExpired},
		{"revoked", apikeys.Key{RevokedAt: &past}, apikeys.StateRevoked},
		{"revoked and expired", apikeys.Key{RevokedAt: &past, ExpiresAt: &past}, apikeys.StateRevoked},
	}
	for _, tt := range tests {
		if got := tt.key.State(now); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
