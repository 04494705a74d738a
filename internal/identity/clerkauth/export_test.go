package clerkauth

import "time"

// SetMinRefresh shortens the JWKS refresh window so tests need not sleep for seconds.
func SetMinRefresh(v *Verifier, d time.Duration) {
	v.jwks.mu.Lock()
	defer v.jwks.mu.Unlock()
	v.jwks.minRefresh = d
}
