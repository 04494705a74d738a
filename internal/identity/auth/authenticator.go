package auth

import (
	"fmt"
	"slices"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/identity/clerkauth"
	"github.com/insien/orchestrator/internal/identity/users"
	"github.com/insien/orchestrator/internal/platform/actor"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/middleware"
	"github.com/insien/orchestrator/internal/platform/ratelimit"
)

// Authenticator resolves credentials into a principal.
type Authenticator struct {
	verifier *clerkauth.Verifier
	keys     *apikeys.Service
	users    *users.Service
	limiter  *ratelimit.Limiter
}

// Params are the authenticator's dependencies.
type Params struct {
	fx.In
	Verifier *clerkauth.Verifier
	Keys     *apikeys.Service
	Users    *users.Service
	Limiter  *ratelimit.Limiter
}

// NewAuthenticator builds the authenticator.
func NewAuthenticator(p Params) *Authenticator {
	return &Authenticator{verifier: p.Verifier, keys: p.Keys, users: p.Users, limiter: p.Limiter}
}

// Require authenticates the request, accepting only the given kinds of principal, then applies
// the principal's rate limit. Failed attempts count against the client IP's limit.
func (a *Authenticator) Require(kinds ...Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := a.authenticate(c)
		if err == nil && !slices.Contains(kinds, p.Kind) {
			err = apierror.Forbidden("session_required", "this route needs a Clerk session; API keys cannot manage users or keys")
		}
		if err != nil {
			if apierror.IsUnauthorized(err) && !a.limiter.Allow(c, ratelimit.Anonymous, c.ClientIP()) {
				return
			}
			_ = c.Error(err)
			c.Abort()
			return
		}
		c.Set(principalKey, p)
		middleware.SetPrincipal(c, p.LogName())
		c.Request = c.Request.WithContext(actor.With(c.Request.Context(), actor.Actor{Principal: p.LogName(), RequestID: middleware.RequestID(c)}))
		if !a.limiter.Allow(c, ratelimit.Principal, p.RateKey()) {
			return
		}
		c.Next()
	}
}

// RequireScope refuses principals without scope (API keys limited to read, for example).
func RequireScope(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !From(c).Has(scope) {
			_ = c.Error(apierror.Forbidden("insufficient_scope", "this API key lacks the %s scope", scope))
			c.Abort()
			return
		}
		c.Next()
	}
}

// authenticate reads exactly one credential: Authorization: Bearer <jwt|isk_...> or X-API-Key.
func (a *Authenticator) authenticate(c *gin.Context) (Principal, error) {
	cred, err := parseCredential(c.Request.Header)
	if err != nil {
		return Principal{}, fmt.Errorf("read credentials: %w", err)
	}
	if cred.apiKey {
		return a.fromAPIKey(c, cred.token)
	}
	claims, err := a.verifier.Verify(c.Request.Context(), cred.token)
	if err != nil {
		return Principal{}, fmt.Errorf("verify session token: %w", err)
	}
	u, err := a.users.EnsureClerkUser(c.Request.Context(), claims.UserID)
	if err != nil {
		return Principal{}, fmt.Errorf("resolve user %s: %w", claims.UserID, err)
	}
	return Principal{Kind: KindSession, UserID: u.ID, ClerkUserID: claims.UserID, Scopes: sessionScopes}, nil
}

func (a *Authenticator) fromAPIKey(c *gin.Context, raw string) (Principal, error) {
	id, err := a.keys.Authenticate(c.Request.Context(), raw)
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate API key: %w", err)
	}
	return Principal{Kind: KindAPIKey, UserID: id.UserID, KeyID: id.KeyID, Scopes: id.Scopes}, nil
}
