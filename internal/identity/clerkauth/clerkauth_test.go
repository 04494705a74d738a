package clerkauth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/go-jose/go-jose/v3"
	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/insien/orchestrator/internal/identity/clerkauth"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

const jwksPath = "/v1/jwks"

// mode builds a verifier for the stub: offline with the PEM key, or online with the JWKS.
type mode struct {
	name  string
	setup func(s *clerkstub.Server, cfg *config.Clerk)
}

var modes = []mode{
	{"pem", func(s *clerkstub.Server, cfg *config.Clerk) { cfg.JWTKey = s.PublicKeyPEM() }},
	{"jwks", func(s *clerkstub.Server, cfg *config.Clerk) { cfg.SecretKey = config.Secret(s.SecretKey()) }},
}

func baseConfig(s *clerkstub.Server) config.Clerk {
	return config.Clerk{APIURL: s.URL(), RequestTimeout: 2 * time.Second}
}

func newVerifier(t *testing.T, cfg config.Clerk) *clerkauth.Verifier {
	t.Helper()
	v, err := clerkauth.NewVerifier(cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// wantAPIError asserts err is an *apierror.Error with status and code, and that neither what the
// client sees nor what the log sees contains the token or the secret key.
func wantAPIError(t *testing.T, err error, status int, code string, secrets ...string) {
	t.Helper()
	apiErr, ok := apierror.As(err)
	if !ok {
		t.Fatalf("error %v (%T) is not an *apierror.Error", err, err)
	}
	if apiErr.Status != status || apiErr.Code != code {
		t.Fatalf("got %d %s (%v), want %d %s", apiErr.Status, apiErr.Code, err, status, code)
	}
	if apiErr.Message == "" {
		t.Errorf("empty message for %s", code)
	}
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		if strings.Contains(apiErr.Message, secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("error %q leaks a secret", err.Error())
		}
	}
}

func hs256Token(t *testing.T, kid string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, opts)
	if err != nil {
		t.Fatal(err)
	}
	token, err := josejwt.Signed(signer).Claims(map[string]any{
		"sub": "user_1", "iss": clerkstub.DefaultIssuer, "exp": time.Now().Add(time.Minute).Unix(),
	}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func noneToken(kid string) string {
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(fmt.Sprintf(`{"alg":"none","typ":"JWT","kid":%q}`, kid)))
	payload := enc([]byte(fmt.Sprintf(`{"sub":"user_1","iss":%q,"exp":%d}`, clerkstub.DefaultIssuer, time.Now().Add(time.Minute).Unix())))
	return header + "." + payload + "."
}

func TestVerify(t *testing.T) {
	valid := clerkstub.TokenOptions{Subject: "user_2abc", SessionID: "sess_1", AuthorizedParty: "https://app.example.com"}
	with := func(change func(*clerkstub.TokenOptions)) func(*testing.T, *clerkstub.Server) string {
		return func(t *testing.T, s *clerkstub.Server) string {
			o := valid
			change(&o)
			return s.Token(t, o)
		}
	}
	literal := func(token string) func(*testing.T, *clerkstub.Server) string {
		return func(*testing.T, *clerkstub.Server) string { return token }
	}
	otherKey := clerkstub.NewKey(t)

	cases := []struct {
		name        string
		parties     []string
		leeway      time.Duration
		maxLifetime time.Duration // 0 = the default (24h)
		token       func(*testing.T, *clerkstub.Server) string
		wantCode    string // "" = valid
		status      int
	}{
		{name: "valid", token: with(func(*clerkstub.TokenOptions) {})},
		{name: "valid with allowed azp", parties: []string{"https://other.example.com", "https://app.example.com"}, token: with(func(*clerkstub.TokenOptions) {})},
		{name: "expired", token: with(func(o *clerkstub.TokenOptions) { o.ExpiresIn = -time.Minute }), wantCode: "token_expired"},
		{name: "expired beyond leeway", leeway: 5 * time.Second, token: with(func(o *clerkstub.TokenOptions) { o.ExpiresIn = -10 * time.Second }), wantCode: "token_expired"},
		{name: "expired 2s ago without leeway", token: with(func(o *clerkstub.TokenOptions) { o.ExpiresIn = -2 * time.Second }), wantCode: "token_expired"},
		{name: "expired 2s ago within 5s leeway", leeway: 5 * time.Second, token: with(func(o *clerkstub.TokenOptions) { o.ExpiresIn = -2 * time.Second })},
		{name: "nbf in the future", token: with(func(o *clerkstub.TokenOptions) { o.NotBefore = time.Now().Add(time.Minute) }), wantCode: "token_not_yet_valid"},
		{name: "nbf 2s ahead within 5s leeway", leeway: 5 * time.Second, token: with(func(o *clerkstub.TokenOptions) {
			o.NotBefore = time.Now().Add(2 * time.Second)
			o.IssuedAt = o.NotBefore
		})},
		{name: "iat in the future", token: with(func(o *clerkstub.TokenOptions) {
			o.IssuedAt = time.Now().Add(time.Minute)
			o.NotBefore = time.Now().Add(-time.Minute)
		}), wantCode: "token_not_yet_valid"},
		{name: "signed with another key", token: with(func(o *clerkstub.TokenOptions) { o.SignWith = otherKey }), wantCode: "invalid_signature"},
		{name: "expired and signed with another key", token: with(func(o *clerkstub.TokenOptions) {
			o.SignWith = otherKey
			o.ExpiresIn = -time.Minute
		}), wantCode: "invalid_signature"},
		{name: "payload swapped", token: func(t *testing.T, s *clerkstub.Server) string {
			a := strings.Split(s.Token(t, valid), ".")
			o := valid
			o.Subject = "user_attacker"
			b := strings.Split(s.Token(t, o), ".")
			return a[0] + "." + b[1] + "." + a[2]
		}, wantCode: "invalid_signature"},
		{name: "empty", token: literal(""), wantCode: "invalid_token"},
		{name: "abc", token: literal("abc"), wantCode: "invalid_token"},
		{name: "a.b.c", token: literal("a.b.c"), wantCode: "invalid_token"},
		{name: "two parts", token: literal("eyJhbGciOiJSUzI1NiJ9.e30"), wantCode: "invalid_token"},
		{name: "huge", token: literal(strings.Repeat("a", 20000) + ".b.c"), wantCode: "invalid_token"},
		{name: "alg none", token: func(_ *testing.T, s *clerkstub.Server) string { return noneToken(s.Kid()) }, wantCode: "invalid_token"},
		{name: "alg HS256", token: func(t *testing.T, s *clerkstub.Server) string { return hs256Token(t, s.Kid()) }, wantCode: "invalid_token"},
		{name: "missing sub", token: with(func(o *clerkstub.TokenOptions) { o.Subject = "" }), wantCode: "invalid_token"},
		{name: "foreign issuer", token: with(func(o *clerkstub.TokenOptions) { o.Issuer = "https://evil.example.com" }), wantCode: "invalid_token"},
		{name: "bad claim type", token: with(func(o *clerkstub.TokenOptions) { o.Extra = map[string]any{"exp": "tomorrow"} }), wantCode: "invalid_token"},
		{name: "wrong azp", parties: []string{"https://app.example.com"}, token: with(func(o *clerkstub.TokenOptions) {
			o.AuthorizedParty = "https://evil.example.com"
		}), wantCode: "invalid_authorized_party"},
		{name: "missing azp", parties: []string{"https://app.example.com"}, token: with(func(o *clerkstub.TokenOptions) {
			o.AuthorizedParty = ""
		}), wantCode: "invalid_authorized_party"},
		{name: "azp not checked without parties", token: with(func(o *clerkstub.TokenOptions) { o.AuthorizedParty = "https://anything.example.com" })},
		{name: "10-year exp", token: with(func(o *clerkstub.TokenOptions) { o.ExpiresIn = 10 * 365 * 24 * time.Hour }), wantCode: "token_lifetime_too_long"},
		{name: "10-year exp without iat", token: with(func(o *clerkstub.TokenOptions) {
			o.ExpiresIn = 10 * 365 * 24 * time.Hour
			o.Extra = map[string]any{"iat": nil}
		}), wantCode: "token_lifetime_too_long"},
		{name: "issued long ago, 25h lifetime", token: with(func(o *clerkstub.TokenOptions) {
			o.IssuedAt = time.Now().Add(-24*time.Hour - 59*time.Minute)
			o.ExpiresIn = 25 * time.Hour
		}), wantCode: "token_lifetime_too_long"},
		{name: "90s lifetime over a 1m maximum", maxLifetime: time.Minute, token: with(func(o *clerkstub.TokenOptions) { o.ExpiresIn = 90 * time.Second }), wantCode: "token_lifetime_too_long"},
		{name: "60s lifetime within a 1m maximum", maxLifetime: time.Minute, token: with(func(*clerkstub.TokenOptions) {})},
		{name: "60s without iat within a 1m maximum", maxLifetime: time.Minute, token: with(func(o *clerkstub.TokenOptions) { o.Extra = map[string]any{"iat": nil} })},
	}

	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			stub := clerkstub.New(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					cfg := baseConfig(stub)
					cfg.AuthorizedParties = tc.parties
					cfg.Leeway = tc.leeway
					cfg.MaxTokenLifetime = tc.maxLifetime
					m.setup(stub, &cfg)
					v := newVerifier(t, cfg)
					token := tc.token(t, stub)

					claims, err := v.Verify(context.Background(), token)
					if tc.wantCode != "" {
						wantAPIError(t, err, http.StatusUnauthorized, tc.wantCode, token, stub.SecretKey())
						return
					}
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					if claims.UserID != "user_2abc" || claims.SessionID != "sess_1" {
						t.Errorf("claims = %+v", claims)
					}
					if claims.AuthorizedParty == "" {
						t.Errorf("azp missing from %+v", claims)
					}
					if claims.ExpiresAt.IsZero() || claims.ExpiresAt.After(time.Now().Add(2*time.Minute)) {
						t.Errorf("ExpiresAt = %v", claims.ExpiresAt)
					}
				})
			}
			if m.name == "pem" && stub.Requests(jwksPath) != 0 {
				t.Errorf("offline mode fetched the JWKS %d times", stub.Requests(jwksPath))
			}
		})
	}
}

func TestNewVerifier(t *testing.T) {
	stub := clerkstub.New(t)

	t.Run("not configured", func(t *testing.T) {
		v := newVerifier(t, baseConfig(stub))
		if v.Enabled() {
			t.Fatal("Enabled without keys")
		}
		_, err := v.Verify(context.Background(), stub.Token(t, clerkstub.TokenOptions{Subject: "user_1"}))
		wantAPIError(t, err, http.StatusUnauthorized, "auth_not_configured")
	})

	for _, bad := range []string{
		"not a pem",
		"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
	} {
		t.Run("bad pem", func(t *testing.T) {
			cfg := baseConfig(stub)
			cfg.JWTKey = bad
			_, err := clerkauth.NewVerifier(cfg, zap.NewNop())
			var cfgErr *config.Error
			if !errors.As(err, &cfgErr) || cfgErr.Key != "clerk.jwt_key" {
				t.Fatalf("err = %v, want a config error naming clerk.jwt_key", err)
			}
		})
	}

	t.Run("pem with escaped newlines", func(t *testing.T) {
		cfg := baseConfig(stub)
		cfg.JWTKey = strings.ReplaceAll(strings.TrimSpace(stub.PublicKeyPEM()), "\n", `\n`)
		v := newVerifier(t, cfg)
		if _, err := v.Verify(context.Background(), stub.Token(t, clerkstub.TokenOptions{Subject: "user_1"})); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("pem wins over secret key", func(t *testing.T) {
		cfg := baseConfig(stub)
		cfg.JWTKey = stub.PublicKeyPEM()
		cfg.SecretKey = config.Secret(stub.SecretKey())
		before := stub.Requests(jwksPath)
		v := newVerifier(t, cfg)
		if _, err := v.Verify(context.Background(), stub.Token(t, clerkstub.TokenOptions{Subject: "user_1"})); err != nil {
			t.Fatal(err)
		}
		if stub.Requests(jwksPath) != before {
			t.Fatal("offline mode fetched the JWKS")
		}
	})
}

func jwksVerifier(t *testing.T, stub *clerkstub.Server, log *zap.Logger) *clerkauth.Verifier {
	t.Helper()
	cfg := baseConfig(stub)
	cfg.SecretKey = config.Secret(stub.SecretKey())
	v, err := clerkauth.NewVerifier(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWKSCacheAndRotation(t *testing.T) {
	stub := clerkstub.New(t)
	v := jwksVerifier(t, stub, zap.NewNop())
	clerkauth.SetMinRefresh(v, 0) // rotation right after the first fetch must not wait 5 s
	ctx := context.Background()
	verify := func(token string) error {
		_, err := v.Verify(ctx, token)
		return err
	}

	oldToken := stub.Token(t, clerkstub.TokenOptions{Subject: "user_1"})
	for range 3 {
		if err := verify(oldToken); err != nil {
			t.Fatal(err)
		}
	}
	if n := stub.Requests(jwksPath); n != 1 {
		t.Fatalf("JWKS fetched %d times for three verifications, want 1", n)
	}

	// Malformed tokens and tokens without kid are refused before any fetch.
	for _, token := range []string{"", "a.b.c", stub.Token(t, clerkstub.TokenOptions{Subject: "user_1", SignWith: clerkstub.NewKey(t), Kid: ""})} {
		_ = verify(token)
	}
	if n := stub.Requests(jwksPath); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}

	stub.RotateKey()
	newToken := stub.Token(t, clerkstub.TokenOptions{Subject: "user_1"})
	if err := verify(newToken); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	if n := stub.Requests(jwksPath); n != 2 {
		t.Fatalf("JWKS fetched %d times after rotation, want 2", n)
	}
	if err := verify(newToken); err != nil {
		t.Fatal(err)
	}
	if n := stub.Requests(jwksPath); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (new key cached)", n)
	}

	// The old kid is no longer served: one more refresh finds nothing, the token is refused.
	wantAPIError(t, verify(oldToken), http.StatusUnauthorized, "invalid_token", oldToken)
}

func TestJWKSUnknownKidIsRateLimited(t *testing.T) {
	stub := clerkstub.New(t)
	v := jwksVerifier(t, stub, zap.NewNop()) // default window: 5 s
	ctx := context.Background()

	if _, err := v.Verify(ctx, stub.Token(t, clerkstub.TokenOptions{Subject: "user_1"})); err != nil {
		t.Fatal(err)
	}
	// The first fetch just happened, so garbage kids inside the window fetch nothing.
	garbage := func(prefix string) []string { // signed here: Token may call t.Fatal, not allowed in goroutines
		tokens := make([]string, 50)
		for i := range tokens {
			tokens[i] = stub.Token(t, clerkstub.TokenOptions{Subject: "user_1", Kid: fmt.Sprintf("%s_%d", prefix, i)})
		}
		return tokens
	}
	var wg sync.WaitGroup
	for _, token := range garbage("garbage") {
		wg.Go(func() {
			_, err := v.Verify(ctx, token)
			if e, ok := apierror.As(err); !ok || e.Code != "invalid_token" {
				t.Errorf("garbage kid: %v", err)
			}
		})
	}
	wg.Wait()
	if n := stub.Requests(jwksPath); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1: garbage kids must not refetch inside the window", n)
	}

	// Past the window, garbage kids cause exactly one refetch between them.
	more := garbage("more_garbage")
	clerkauth.SetMinRefresh(v, 300*time.Millisecond)
	time.Sleep(350 * time.Millisecond)
	for _, token := range more {
		wg.Go(func() { _, _ = v.Verify(ctx, token) })
	}
	wg.Wait()
	if n := stub.Requests(jwksPath); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
}

func TestJWKSConcurrentFirstUseFetchesOnce(t *testing.T) {
	stub := clerkstub.New(t)
	v := jwksVerifier(t, stub, zap.NewNop())
	token := stub.Token(t, clerkstub.TokenOptions{Subject: "user_1"})
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), token); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := stub.Requests(jwksPath); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1 (concurrent refreshes coalesced)", n)
	}
}

func TestJWKSUnavailable(t *testing.T) {
	ctx := context.Background()

	t.Run("Clerk down, then back", func(t *testing.T) {
		stub := clerkstub.New(t)
		v := jwksVerifier(t, stub, zap.NewNop())
		clerkauth.SetMinRefresh(v, 100*time.Millisecond)
		token := stub.Token(t, clerkstub.TokenOptions{Subject: "user_1"})

		stub.SetDown(true)
		_, err := v.Verify(ctx, token)
		wantAPIError(t, err, http.StatusServiceUnavailable, "auth_unavailable", token, stub.SecretKey())
		fetched := stub.Requests(jwksPath)
		_, err = v.Verify(ctx, token) // inside the window: the last failure, no new request
		wantAPIError(t, err, http.StatusServiceUnavailable, "auth_unavailable", token)
		if stub.Requests(jwksPath) != fetched {
			t.Fatal("a failed fetch was retried inside the window")
		}

		stub.SetDown(false)
		time.Sleep(150 * time.Millisecond)
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatalf("after Clerk came back: %v", err)
		}

		// Known keys keep working while Clerk is down.
		stub.SetDown(true)
		time.Sleep(150 * time.Millisecond)
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatalf("cached key while Clerk is down: %v", err)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		stub := clerkstub.New(t)
		cfg := config.Clerk{APIURL: dead.URL + "/v1", SecretKey: "sk_test_x", RequestTimeout: time.Second}
		v := newVerifier(t, cfg)
		_, err := v.Verify(ctx, stub.Token(t, clerkstub.TokenOptions{Subject: "user_1"}))
		wantAPIError(t, err, http.StatusServiceUnavailable, "auth_unavailable")
	})

	t.Run("secret key refused", func(t *testing.T) {
		stub := clerkstub.New(t)
		core, logs := observer.New(zap.DebugLevel)
		cfg := baseConfig(stub)
		cfg.SecretKey = "sk_test_wrong_and_secret"
		v, err := clerkauth.NewVerifier(cfg, zap.New(core))
		if err != nil {
			t.Fatal(err)
		}
		token := stub.Token(t, clerkstub.TokenOptions{Subject: "user_1"})
		_, err = v.Verify(ctx, token)
		wantAPIError(t, err, http.StatusServiceUnavailable, "auth_unavailable", token, "sk_test_wrong_and_secret")
		if logs.Len() == 0 {
			t.Fatal("the failed fetch was not logged")
		}
		for _, entry := range logs.All() {
			line := fmt.Sprint(entry.Message, entry.ContextMap())
			if strings.Contains(line, "sk_test_wrong_and_secret") || strings.Contains(line, token) {
				t.Errorf("log leaks a secret: %s", line)
			}
		}
	})

	t.Run("caller gives up while waiting", func(t *testing.T) {
		hang := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
		t.Cleanup(slow.Close)
		t.Cleanup(func() { close(hang) })
		stub := clerkstub.New(t)
		v := newVerifier(t, config.Clerk{APIURL: slow.URL + "/v1", SecretKey: "sk_test_x", RequestTimeout: 300 * time.Millisecond})
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := v.Verify(cctx, stub.Token(t, clerkstub.TokenOptions{Subject: "user_1"}))
		wantAPIError(t, err, http.StatusServiceUnavailable, "auth_unavailable")
		if elapsed := time.Since(start); elapsed > 250*time.Millisecond {
			t.Fatalf("Verify took %v: it must return when the caller's context ends, not when the fetch does", elapsed)
		}
	})
}

func usersFor(stub *clerkstub.Server) *clerkauth.Users {
	cfg := baseConfig(stub)
	cfg.SecretKey = config.Secret(stub.SecretKey())
	return clerkauth.NewUsers(cfg)
}

func TestUsersGet(t *testing.T) {
	stub := clerkstub.New(t)
	stub.SetUser(clerkstub.User{
		ID: "user_full", Email: "ada@example.com", OtherEmails: []string{"old@example.com"},
		FirstName: "Ada", LastName: "Lovelace", Username: "ada", ImageURL: "https://img.clerk.com/ada.png",
	})
	stub.SetUser(clerkstub.User{ID: "user_bare"})
	stub.SetUser(clerkstub.User{ID: "user_gone", Email: "gone@example.com"})
	stub.DeleteUser("user_gone")
	users := usersFor(stub)
	if !users.Enabled() {
		t.Fatal("Users not enabled with a secret key")
	}
	ctx := context.Background()

	cases := []struct {
		id      string
		want    clerkauth.Profile
		wantErr error
	}{
		{id: "user_full", want: clerkauth.Profile{
			ClerkUserID: "user_full", Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace",
			Username: "ada", ImageURL: "https://img.clerk.com/ada.png",
		}},
		{id: "user_bare", want: clerkauth.Profile{ClerkUserID: "user_bare"}},
		{id: "user_unknown", wantErr: clerkauth.ErrUserNotFound},
		{id: "user_gone", wantErr: clerkauth.ErrUserNotFound},
		{id: "../jwks", wantErr: clerkauth.ErrUserNotFound},
		{id: "", wantErr: clerkauth.ErrUserNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			got, err := users.Get(ctx, tc.id)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if n := stub.Requests("/v1/users/../jwks") + stub.Requests(jwksPath); n != 0 {
		t.Fatalf("a malformed ID reached Clerk (%d requests)", n)
	}

	t.Run("webhook payload maps like the API", func(t *testing.T) {
		p, err := clerkauth.ParseUserPayload(stub.UserJSON("user_full"))
		if err != nil {
			t.Fatal(err)
		}
		if p != cases[0].want {
			t.Fatalf("got %+v", p)
		}
		if _, err := clerkauth.ParseUserPayload([]byte(`{"id":`)); err == nil {
			t.Fatal("truncated JSON accepted")
		}
	})
}

func TestUsersGetFailures(t *testing.T) {
	ctx := context.Background()

	t.Run("Clerk down", func(t *testing.T) {
		stub := clerkstub.New(t)
		stub.SetUser(clerkstub.User{ID: "user_1"})
		stub.SetDown(true)
		_, err := usersFor(stub).Get(ctx, "user_1")
		if !errors.Is(err, clerkauth.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if strings.Contains(err.Error(), stub.SecretKey()) {
			t.Fatal("error leaks the secret key")
		}
	})

	for _, tc := range []struct {
		name        string
		status      int
		body        string
		want        error
		notSentinel bool
	}{
		{name: "503 in Clerk's shape", status: 503, body: `{"errors":[{"code":"service_unavailable","message":"down"}]}`, want: clerkauth.ErrUnavailable},
		{name: "502 from a proxy", status: 502, body: `<html>bad gateway</html>`, want: clerkauth.ErrUnavailable},
		{name: "429", status: 429, body: `{"errors":[{"code":"too_many_requests","message":"slow down"}]}`, want: clerkauth.ErrUnavailable},
		{name: "200 that is not JSON", status: 200, body: `not json`, want: clerkauth.ErrUnavailable},
		{name: "401 bad secret", status: 401, body: `{"errors":[{"code":"authentication_invalid","message":"no"}]}`, notSentinel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			users := clerkauth.NewUsers(config.Clerk{APIURL: srv.URL + "/v1", SecretKey: "sk_test_hidden", RequestTimeout: time.Second})
			_, err := users.Get(ctx, "user_1")
			if err == nil {
				t.Fatal("no error")
			}
			if tc.notSentinel {
				if errors.Is(err, clerkauth.ErrUnavailable) || errors.Is(err, clerkauth.ErrUserNotFound) {
					t.Fatalf("err = %v, want neither sentinel", err)
				}
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), "sk_test_hidden") {
				t.Fatal("error leaks the secret key")
			}
		})
	}

	t.Run("not configured", func(t *testing.T) {
		users := clerkauth.NewUsers(config.Clerk{APIURL: "http://127.0.0.1:1/v1"})
		if users.Enabled() {
			t.Fatal("enabled without a secret key")
		}
		if _, err := users.Get(ctx, "user_1"); !errors.Is(err, clerkauth.ErrNotConfigured) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestProfileFromUser(t *testing.T) {
	s := clerk.String
	cases := []struct {
		name string
		user *clerk.User
		want clerkauth.Profile
	}{
		{"nil", nil, clerkauth.Profile{}},
		{"no primary: first email", &clerk.User{ID: "user_1", EmailAddresses: []*clerk.EmailAddress{
			nil, {ID: "idn_a", EmailAddress: "a@example.com"}, {ID: "idn_b", EmailAddress: "b@example.com"},
		}}, clerkauth.Profile{ClerkUserID: "user_1", Email: "a@example.com"}},
		{"primary second", &clerk.User{ID: "user_1", PrimaryEmailAddressID: s("idn_b"), FirstName: s("B"), EmailAddresses: []*clerk.EmailAddress{
			{ID: "idn_a", EmailAddress: "a@example.com"}, {ID: "idn_b", EmailAddress: "b@example.com"},
		}}, clerkauth.Profile{ClerkUserID: "user_1", Email: "b@example.com", FirstName: "B"}},
		{"primary id dangling", &clerk.User{ID: "user_1", PrimaryEmailAddressID: s("idn_z"), EmailAddresses: []*clerk.EmailAddress{
			{ID: "idn_a", EmailAddress: "a@example.com"},
		}}, clerkauth.Profile{ClerkUserID: "user_1", Email: "a@example.com"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := clerkauth.ProfileFromUser(tc.user); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestModule(t *testing.T) {
	stub := clerkstub.New(t)
	cfg := baseConfig(stub)
	cfg.SecretKey = config.Secret(stub.SecretKey())
	var (
		v     *clerkauth.Verifier
		users *clerkauth.Users
	)
	app := fxtest.New(t,
		fx.Supply(cfg, zap.NewNop()),
		clerkauth.Module,
		fx.Populate(&v, &users),
	)
	app.RequireStart().RequireStop()
	if !v.Enabled() || !users.Enabled() {
		t.Fatal("module built disabled clients")
	}
}
