package auth

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/platform/apierror"
)

// credential is the one secret a request presents, before it is verified.
type credential struct {
	token  string
	apiKey bool // an API key (isk_...), else a Clerk session token
}

// parseCredential reads exactly one credential from the headers: Authorization: Bearer <token>
// or X-API-Key. A request that carries more than one (both headers, either header twice, or two
// keys joined by a comma as proxies merge repeated headers) is refused rather than served as
// whichever comes first: intermediaries disagree on which duplicate wins, so one request could
// be read as two different callers. Blank headers count as absent.
func parseCredential(h http.Header) (credential, error) {
	authz, keys := present(h.Values("Authorization")), present(h.Values("X-API-Key"))
	switch {
	case len(authz) > 1:
		return credential{}, ambiguous("send one Authorization header, not %d", len(authz))
	case len(keys) > 1:
		return credential{}, ambiguous("send one X-API-Key header, not %d", len(keys))
	case len(authz) == 1 && len(keys) == 1:
		return credential{}, ambiguous("send either Authorization or X-API-Key, not both")
	case len(keys) == 1:
		if strings.Contains(keys[0], ",") {
			return credential{}, ambiguous("send one API key in X-API-Key, not a list")
		}
		return credential{token: keys[0], apiKey: true}, nil
	case len(authz) == 0:
		return credential{}, apierror.Unauthorized("missing_credentials", "send a Clerk session token or an API key in the Authorization header")
	}
	token, err := bearerToken(authz[0])
	if err != nil {
		return credential{}, fmt.Errorf("read bearer token: %w", err)
	}
	return credential{token: token, apiKey: strings.HasPrefix(token, apikeys.Prefix)}, nil
}

// present trims the values of a header and drops the blank ones.
func present(values []string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func ambiguous(format string, args ...any) error {
	return apierror.Unauthorized("ambiguous_credentials", format, args...)
}

// bearerToken reads "Bearer <token>" (the scheme is case-insensitive, RFC 9110 §11.1). Neither
// session tokens nor API keys contain whitespace or commas: a value with them is two credentials
// merged by a proxy, or not a bearer token at all.
func bearerToken(header string) (string, error) {
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	switch {
	case !ok || !strings.EqualFold(scheme, "Bearer") || token == "":
		return "", apierror.Unauthorized("invalid_authorization_header", "the Authorization header must be \"Bearer <token>\"")
	case strings.Contains(token, ","):
		return "", ambiguous("send one token in the Authorization header, not a list")
	case strings.ContainsAny(token, " \t"):
		return "", apierror.Unauthorized("invalid_authorization_header", "the Authorization header must be \"Bearer <token>\"")
	}
	return token, nil
}
