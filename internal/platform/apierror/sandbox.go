package apierror

import "net/http"

// The statuses below are those the sandbox services answer with besides the common ones, so that
// they need not know HTTP.

// Missing is a 404 with a specific code, for something inside a resource the caller may see
// (a file in a sandbox).
func Missing(code, format string, args ...any) *Error {
	return New(http.StatusNotFound, code, format, args...)
}

// TooLarge is a 413.
func TooLarge(code, format string, args ...any) *Error {
	return New(http.StatusRequestEntityTooLarge, code, format, args...)
}

// Unprocessable is a 422: a well-formed request that cannot be carried out as asked.
func Unprocessable(code, format string, args ...any) *Error {
	return New(http.StatusUnprocessableEntity, code, format, args...)
}

// TooManyRequests is a 429: a quota or limit is reached; retrying later may succeed.
func TooManyRequests(code, format string, args ...any) *Error {
	return New(http.StatusTooManyRequests, code, format, args...)
}

// BadGateway is a 502: a dependency (the sandbox runtime) failed.
func BadGateway(code, format string, args ...any) *Error {
	return New(http.StatusBadGateway, code, format, args...)
}
