package clerkauth_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/identity/clerkauth"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// FuzzVerify feeds arbitrary bearer tokens to the verifier (offline, with a PEM key: no network):
// it never panics, and refuses every token but those signed with the key with a 401 in the error
// shape whose message never contains the token.
func FuzzVerify(f *testing.F) {
	key := clerkstub.NewKey(f)
	v, err := clerkauth.NewVerifier(config.Clerk{JWTKey: clerkstub.PublicKeyPEM(&key.PublicKey)}, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	sign := func(o clerkstub.TokenOptions) string { return clerkstub.SignToken(f, key, "kid_1", o) }
	valid := sign(clerkstub.TokenOptions{Subject: "user_1"})
	for _, seed := range []string{
		valid,
		sign(clerkstub.TokenOptions{Subject: "user_1", ExpiresIn: 10 * 365 * 24 * time.Hour}),
		sign(clerkstub.TokenOptions{Subject: "user_1", Extra: map[string]any{"iat": nil}}),
		sign(clerkstub.TokenOptions{Subject: "user_1", ExpiresIn: -time.Minute}),
		sign(clerkstub.TokenOptions{Subject: ""}),
		"", "a.b.c", "..", "eyJhbGciOiJub25lIn0.e30.", valid + "x", strings.Replace(valid, ".", "..", 1),
		strings.Repeat("a", 9000),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(context.Background(), token)
		if err == nil {
			if claims.UserID == "" || claims.ExpiresAt.IsZero() {
				t.Fatalf("accepted %q with claims %+v", token, claims)
			}
			return
		}
		apiErr, ok := apierror.As(err)
		if !ok || apiErr.Status != http.StatusUnauthorized || apiErr.Code == "" || apiErr.Message == "" {
			t.Fatalf("%q: %v (%T), want a 401 in the error shape", token, err, err)
		}
		if len(token) > 8 && strings.Contains(apiErr.Message, token) {
			t.Fatalf("message %q echoes the token", apiErr.Message)
		}
	})
}
