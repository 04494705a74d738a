// Package auth turns a request's credentials (a Clerk session token or an API key) into exactly
// one principal, and enforces which kinds of principal and which scopes a route accepts.
package auth

import (
	"slices"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/identity/apikeys"
)

// Kind says how a principal authenticated.
type Kind string

// The kinds of principal.
const (
	KindSession Kind = "session"
	KindAPIKey  Kind = "api_key"
)

// Principal is who makes the request.
type Principal struct {
	Kind        Kind
	UserID      uuid.UUID
	KeyID       uuid.UUID // zero for sessions
	ClerkUserID string    // empty for API keys
	Scopes      []string  // a session has every scope
}

// Has reports whether the principal holds scope.
func (p Principal) Has(scope string) bool {
	return p.Kind == KindSession || slices.Contains(p.Scopes, scope)
}

// RateKey is the principal's rate-limit bucket: one per key, one per user's sessions.
func (p Principal) RateKey() string {
	if p.Kind == KindAPIKey {
		return "key:" + p.KeyID.String()
	}
	return "user:" + p.UserID.String()
}

// LogName identifies the principal in logs without any secret.
func (p Principal) LogName() string { return p.RateKey() }

const principalKey = "auth_principal"

// From returns the request's principal; handlers behind Require always have one.
func From(c *gin.Context) Principal {
	p, _ := c.Get(principalKey)
	principal, _ := p.(Principal)
	return principal
}

var sessionScopes = apikeys.AllScopes
