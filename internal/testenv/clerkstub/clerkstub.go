// Package clerkstub is a loopback stand-in for Clerk, for tests only: it serves Clerk's JWKS and
// Users endpoints in Clerk's JSON shapes and signs session tokens the way Clerk does, so the
// verifier and the Backend API client are tested without the internet.
package clerkstub

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	josejwt "github.com/go-jose/go-jose/v3/jwt"
)

// DefaultIssuer is the issuer of stub tokens; clerk-sdk-go accepts it because it starts with
// https://clerk.
const DefaultIssuer = "https://clerk.example.com"

// User is what a test says about a Clerk user; the stub turns it into Clerk's user object.
type User struct {
	ID        string
	Email     string // the primary email address; "" for none
	FirstName string // "" is sent as null, as Clerk does
	LastName  string
	Username  string
	ImageURL  string
	// OtherEmails are listed before the primary one, so a client that takes the first address
	// instead of the primary one is caught.
	OtherEmails []string
	CreatedAt   time.Time // zero = when SetUser was called
}

// TokenOptions shape a session token. Zero values give a token Clerk could have issued now.
type TokenOptions struct {
	Subject         string        // sub; "" omits the claim
	SessionID       string        // sid; "" omits the claim
	AuthorizedParty string        // azp; "" omits the claim
	ExpiresIn       time.Duration // exp = IssuedAt + ExpiresIn; 0 = 60s (Clerk's lifetime); negative = already expired
	NotBefore       time.Time     // nbf; zero = IssuedAt - 10s, as Clerk does
	IssuedAt        time.Time     // iat; zero = now
	Issuer          string        // iss; "" = DefaultIssuer
	Kid             string        // kid header; "" = the current key's kid
	SignWith        *rsa.PrivateKey
	Extra           map[string]any // more claims, e.g. custom session claims
}

// Server is the running stand-in. All methods are safe for concurrent use.
type Server struct {
	t      testing.TB
	srv    *httptest.Server
	secret string

	mu       sync.Mutex
	key      *rsa.PrivateKey
	kid      string
	users    map[string]User
	down     bool
	requests map[string]int
}

// New starts a stub on 127.0.0.1 with a fresh RSA-2048 signing key; it stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:        t,
		secret:   "sk_test_" + randomHex(t, 16),
		users:    map[string]User{},
		requests: map[string]int{},
	}
	s.key, s.kid = newKey(t)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the Backend API base URL (it ends in /v1, like clerk.APIURL).
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// SecretKey is the secret the stub requires as a Bearer token.
func (s *Server) SecretKey() string { return s.secret }

// Kid is the key ID of the current signing key.
func (s *Server) Kid() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kid
}

// PublicKeyPEM is the current public key in the PEM form Clerk's dashboard shows (CLERK_JWT_KEY).
func (s *Server) PublicKeyPEM() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return PublicKeyPEM(&s.key.PublicKey)
}

// PublicKeyPEM encodes an RSA public key as a PKIX "PUBLIC KEY" PEM block.
func PublicKeyPEM(pub *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // an RSA public key always marshals
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// NewKey generates an RSA-2048 key, e.g. for TokenOptions.SignWith.
func NewKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key, _ := newKey(t)
	return key
}

// RotateKey replaces the signing key with a new one under a new kid; the old key is no longer
// served. It returns the new kid.
func (s *Server) RotateKey() string {
	s.t.Helper()
	key, kid := newKey(s.t)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key, s.kid = key, kid
	return kid
}

// SetUser creates or replaces a user.
func (s *Server) SetUser(u User) {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
}

// DeleteUser removes a user; later lookups answer 404.
func (s *Server) DeleteUser(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users, id)
}

// SetDown makes the stub unreachable (true): every request's connection is closed without an
// answer, as when Clerk cannot be reached. SetDown(false) brings it back.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Requests counts the requests received for path ("/v1/jwks" or "/jwks"), including refused
// ones, so tests can assert caching.
func (s *Server) Requests(path string) int {
	if !strings.HasPrefix(path, "/v1/") {
		path = "/v1/" + strings.TrimPrefix(path, "/")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// UserJSON is Clerk's user object for id, as GET /v1/users/{id} and user.* webhooks send it;
// nil when the user does not exist.
func (s *Server) UserJSON(id string) []byte {
	s.mu.Lock()
	u, ok := s.users[id]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return userJSON(u)
}

// Token signs a session token shaped like Clerk's (claims azp, exp, iat, iss, nbf, sid, sub).
func (s *Server) Token(t testing.TB, o TokenOptions) string {
	t.Helper()
	s.mu.Lock()
	key, kid := s.key, s.kid
	s.mu.Unlock()
	if o.SignWith != nil {
		key = o.SignWith
	}
	if o.Kid != "" {
		kid = o.Kid
	}
	return SignToken(t, key, kid, o)
}

// SignToken signs a Clerk-shaped session token with key under kid ("" = no kid header).
func SignToken(t testing.TB, key *rsa.PrivateKey, kid string, o TokenOptions) string {
	t.Helper()
	iat := o.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	nbf := o.NotBefore
	if nbf.IsZero() {
		nbf = iat.Add(-10 * time.Second)
	}
	ttl := o.ExpiresIn
	if ttl == 0 {
		ttl = time.Minute
	}
	iss := o.Issuer
	if iss == "" {
		iss = DefaultIssuer
	}
	claims := map[string]any{
		"iss": iss,
		"iat": iat.Unix(),
		"nbf": nbf.Unix(),
		"exp": iat.Add(ttl).Unix(),
	}
	for name, value := range map[string]string{"sub": o.Subject, "sid": o.SessionID, "azp": o.AuthorizedParty} {
		if value != "" {
			claims[name] = value
		}
	}
	for name, value := range o.Extra {
		claims[name] = value
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		t.Fatalf("clerkstub: signer: %v", err)
	}
	token, err := josejwt.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		t.Fatalf("clerkstub: sign: %v", err)
	}
	return token
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	down := s.down
	key, kid := s.key, s.kid
	s.mu.Unlock()

	if down {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		writeError(w, http.StatusServiceUnavailable, "service_unavailable", "Clerk is down (stub)")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.secret {
		writeError(w, http.StatusUnauthorized, "authentication_invalid",
			"The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.")
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/jwks":
		writeJSON(w, http.StatusOK, map[string]any{"keys": []any{jose.JSONWebKey{
			Key: &key.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig",
		}}})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/users/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/users/")
		s.mu.Lock()
		u, ok := s.users[id]
		s.mu.Unlock()
		if !ok {
			writeError(w, http.StatusNotFound, "resource_not_found", "Resource not found")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(userJSON(u))
	default:
		writeError(w, http.StatusNotFound, "resource_not_found", "Resource not found")
	}
}

// userJSON renders Clerk's Backend API user object (the same JSON user.* webhooks carry in data).
func userJSON(u User) []byte {
	type emailAddress struct {
		ID           string `json:"id"`
		Object       string `json:"object"`
		EmailAddress string `json:"email_address"`
		Reserved     bool   `json:"reserved"`
		Verification any    `json:"verification"`
		LinkedTo     []any  `json:"linked_to"`
	}
	emails := make([]emailAddress, 0, len(u.OtherEmails)+1)
	var primaryID *string
	for i, addr := range append(append([]string{}, u.OtherEmails...), u.Email) {
		if addr == "" {
			continue
		}
		e := emailAddress{
			ID: fmt.Sprintf("idn_%s_%d", strings.TrimPrefix(u.ID, "user_"), i), Object: "email_address",
			EmailAddress: addr, LinkedTo: []any{},
			Verification: map[string]any{"status": "verified", "strategy": "email_code"},
		}
		if i == len(u.OtherEmails) {
			primaryID = &e.ID
		}
		emails = append(emails, e)
	}
	ms := u.CreatedAt.UnixMilli()
	doc := map[string]any{
		"object":                   "user",
		"id":                       u.ID,
		"username":                 nullable(u.Username),
		"first_name":               nullable(u.FirstName),
		"last_name":                nullable(u.LastName),
		"image_url":                u.ImageURL,
		"has_image":                u.ImageURL != "",
		"primary_email_address_id": primaryID,
		"primary_phone_number_id":  nil,
		"primary_web3_wallet_id":   nil,
		"password_enabled":         false,
		"two_factor_enabled":       false,
		"email_addresses":          emails,
		"phone_numbers":            []any{},
		"web3_wallets":             []any{},
		"external_accounts":        []any{},
		"public_metadata":          map[string]any{},
		"private_metadata":         map[string]any{},
		"unsafe_metadata":          map[string]any{},
		"external_id":              nil,
		"last_sign_in_at":          nil,
		"banned":                   false,
		"locked":                   false,
		"created_at":               ms,
		"updated_at":               ms,
	}
	data, err := json.Marshal(doc)
	if err != nil {
		panic(err) // only strings, numbers and maps: cannot fail
	}
	return data
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// writeError answers in Clerk's error shape.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{
		"errors":         []any{map[string]any{"message": message, "long_message": message, "code": code}},
		"clerk_trace_id": "stub",
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newKey(t testing.TB) (*rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("clerkstub: generate key: %v", err)
	}
	return key, "ins_" + randomHex(t, 12)
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("clerkstub: random: %v", err)
	}
	return hex.EncodeToString(b)
}
