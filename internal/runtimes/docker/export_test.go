package docker

import "time"

// SetCleanupTimeout shortens the cleanup deadline for a test and returns the undo.
func SetCleanupTimeout(d time.Duration) (undo func()) {
	old := cleanupTimeout
	cleanupTimeout = d
	return func() { cleanupTimeout = old }
}
