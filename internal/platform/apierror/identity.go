package apierror

import "net/http"

// IsUnauthorized reports whether err refuses the caller's credentials (a 401), so the
// authenticator can count failed attempts against the client's limit without knowing statuses.
func IsUnauthorized(err error) bool {
	e, ok := As(err)
	return ok && e.Status == http.StatusUnauthorized
}
