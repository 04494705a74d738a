// Package clerkauth verifies Clerk session tokens and reads user profiles from Clerk's Backend
// API, turning every failure into the API's error type so handlers never see the SDK's errors.
package clerkauth

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwt"
	"github.com/go-jose/go-jose/v3"
	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
)

// maxTokenBytes bounds the work spent on a token before its signature is checked. Clerk's
// session tokens are about 1 KB; a cookie cannot exceed 4 KB.
const maxTokenBytes = 8 << 10

// defaultRequestTimeout applies when clerk.request_timeout is unset.
const defaultRequestTimeout = 5 * time.Second

// Claims is what a verified session token says about its bearer.
type Claims struct {
	UserID          string // sub: the Clerk user ID (user_...)
	SessionID       string // sid
	AuthorizedParty string // azp: the origin the token was issued to
	ExpiresAt       time.Time
}

// Verifier checks Clerk session tokens, offline with a PEM key or with keys from Clerk's JWKS.
type Verifier struct {
	log         *zap.Logger
	leeway      time.Duration
	maxLifetime time.Duration
	parties     []string
	pemKey      *clerk.JSONWebKey // offline mode
	jwks        *keySet           // JWKS mode
}

// NewVerifier picks the verification mode from the config: clerk.jwt_key (offline) wins over
// clerk.secret_key (JWKS); with neither, Enabled is false and every token is refused.
func NewVerifier(cfg config.Clerk, log *zap.Logger) (*Verifier, error) {
	if log == nil {
		log = zap.NewNop()
	}
	v := &Verifier{
		log:         log.Named("clerkauth"),
		leeway:      cfg.Leeway,
		maxLifetime: cfg.MaxTokenLifetime,
		parties:     slices.Clone(cfg.AuthorizedParties),
	}
	if v.maxLifetime <= 0 { // a section built in code rather than loaded (Load validates it)
		v.maxLifetime = config.Default().Clerk.MaxTokenLifetime
	}
	switch {
	case strings.TrimSpace(cfg.JWTKey) != "":
		key, err := parsePEMKey(cfg.JWTKey)
		if err != nil {
			return nil, &config.Error{Key: "clerk.jwt_key", Reason: err.Error()}
		}
		v.pemKey = key
		v.log.Info("Clerk session tokens are verified offline with clerk.jwt_key")
	case cfg.SecretKey != "":
		v.jwks = newKeySet(cfg, v.log)
		v.log.Info("Clerk session tokens are verified with keys from Clerk's JWKS", zap.String("api_url", apiURL(cfg)))
	default:
		v.log.Warn("Clerk is not configured (clerk.jwt_key and clerk.secret_key are empty): session tokens are refused")
	}
	return v, nil
}

// parsePEMKey reads Clerk's "JWT public key" (PKIX PEM). Environment variables often carry it
// with literal \n sequences instead of newlines, so those are accepted too.
func parsePEMKey(raw string) (*clerk.JSONWebKey, error) {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "\n") {
		raw = strings.ReplaceAll(raw, `\n`, "\n")
	}
	key, err := clerk.JSONWebKeyFromPEM(raw)
	if err != nil {
		return nil, fmt.Errorf("not a PEM-encoded RSA public key: %w", err)
	}
	if _, ok := key.Key.(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("not an RSA public key (got %T)", key.Key)
	}
	return key, nil
}

// Enabled reports whether tokens can be verified at all.
func (v *Verifier) Enabled() bool { return v.pemKey != nil || v.jwks != nil }

// Verify checks a session token's signature, lifetime, issuer and authorized party. Every error
// is an *apierror.Error: 401 with a code saying what is wrong, or 503 auth_unavailable when
// Clerk's keys cannot be fetched. Messages never contain the token; causes are kept for the log.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if !v.Enabled() {
		return Claims{}, apierror.Unauthorized("auth_not_configured", "session tokens cannot be verified: Clerk is not configured on this server")
	}
	header, err := parseHeader(token)
	if err != nil {
		return Claims{}, invalidToken("the session token is malformed", err)
	}
	if header.Algorithm != string(jose.RS256) {
		return Claims{}, invalidToken("the session token is not signed with RS256", fmt.Errorf("alg %q", header.Algorithm))
	}

	key := v.pemKey
	if key == nil {
		if header.KeyID == "" {
			return Claims{}, invalidToken("the session token names no signing key (kid)", errors.New("missing kid header"))
		}
		var apiErr *apierror.Error
		if key, apiErr = v.jwks.get(ctx, header.KeyID); apiErr != nil {
			return Claims{}, apiErr
		}
	}

	var azpRejected bool
	params := &jwt.VerifyParams{Token: token, JWK: key, Leeway: v.leeway}
	if len(v.parties) > 0 {
		params.AuthorizedPartyHandler = func(azp string) bool {
			ok := slices.Contains(v.parties, azp)
			azpRejected = !ok
			return ok
		}
	}
	sc, err := jwt.Verify(ctx, params)
	switch {
	case err == nil:
	case azpRejected:
		return Claims{}, apierror.Unauthorized("invalid_authorized_party",
			"the session token was issued to an origin this server does not accept").WithCause(err)
	default:
		return Claims{}, classify(err)
	}

	if sc.Subject == "" {
		return Claims{}, invalidToken("the session token names no user (sub)", errors.New("missing sub claim"))
	}
	if sc.Expiry == nil {
		return Claims{}, invalidToken("the session token has no expiry (exp)", errors.New("missing exp claim"))
	}
	if err := v.checkLifetime(*sc.Expiry, sc.IssuedAt, time.Now()); err != nil {
		return Claims{}, fmt.Errorf("check token lifetime: %w", err)
	}
	return Claims{
		UserID:          sc.Subject,
		SessionID:       sc.SessionID,
		AuthorizedParty: sc.AuthorizedParty,
		ExpiresAt:       time.Unix(*sc.Expiry, 0).UTC(),
	}, nil
}

// checkLifetime refuses a token that claims to live longer than clerk.max_token_lifetime: Clerk's
// session tokens live 60 s, so a far-off exp means a token minted elsewhere with a leaked or
// misconfigured key, and one that would stay usable long after its session ended. The lifetime
// is exp - iat, or exp - now for a token without iat.
func (v *Verifier) checkLifetime(exp int64, iat *int64, now time.Time) error {
	from, since := now, "now"
	if iat != nil {
		from, since = time.Unix(*iat, 0), "iat"
	}
	lifetime := time.Unix(exp, 0).Sub(from)
	if lifetime <= v.maxLifetime+v.leeway {
		return nil
	}
	return apierror.Unauthorized("token_lifetime_too_long",
		"the session token claims to be valid for %s, longer than the %s this server accepts",
		lifetime.Round(time.Second), v.maxLifetime).WithCause(fmt.Errorf("exp - %s = %s", since, lifetime))
}

// parseHeader reads the protected header of a compact JWS without trusting it.
func parseHeader(token string) (jose.Header, error) {
	switch {
	case token == "":
		return jose.Header{}, errors.New("empty token")
	case len(token) > maxTokenBytes:
		return jose.Header{}, fmt.Errorf("token is %d bytes, more than %d", len(token), maxTokenBytes)
	case strings.Count(token, ".") != 2:
		return jose.Header{}, errors.New("not a compact JWS (header.payload.signature)")
	}
	parsed, err := josejwt.ParseSigned(token)
	if err != nil {
		return jose.Header{}, fmt.Errorf("parse JWS: %w", err)
	}
	if len(parsed.Headers) != 1 {
		return jose.Header{}, fmt.Errorf("%d signatures", len(parsed.Headers))
	}
	return parsed.Headers[0], nil
}

// classify maps jwt.Verify's errors. The SDK returns go-jose v3's sentinels unwrapped for
// lifetime and signature failures and plain fmt errors for the rest (issuer, algorithm, JSON).
func classify(err error) *apierror.Error {
	switch {
	case errors.Is(err, josejwt.ErrExpired):
		return apierror.Unauthorized("token_expired", "the session token has expired").WithCause(err)
	case errors.Is(err, josejwt.ErrNotValidYet), errors.Is(err, josejwt.ErrIssuedInTheFuture):
		return apierror.Unauthorized("token_not_yet_valid", "the session token is not valid yet; check the clocks").WithCause(err)
	case errors.Is(err, jose.ErrCryptoFailure):
		return apierror.Unauthorized("invalid_signature", "the session token's signature does not match Clerk's key").WithCause(err)
	default:
		return invalidToken("the session token is invalid", err)
	}
}

func invalidToken(message string, cause error) *apierror.Error {
	return apierror.Unauthorized("invalid_token", "%s", message).WithCause(cause)
}

func apiURL(cfg config.Clerk) string {
	if cfg.APIURL == "" {
		return clerk.APIURL
	}
	return strings.TrimRight(cfg.APIURL, "/")
}

func httpClient(cfg config.Clerk) *http.Client {
	timeout := cfg.RequestTimeout
	if timeout <= 0 {
		timeout = defaultRequestTimeout
	}
	return &http.Client{Timeout: timeout}
}

func backendConfig(cfg config.Clerk) *clerk.ClientConfig {
	return &clerk.ClientConfig{BackendConfig: clerk.BackendConfig{
		HTTPClient: httpClient(cfg),
		URL:        clerk.String(apiURL(cfg)),
		Key:        clerk.String(cfg.SecretKey.Reveal()),
	}}
}
