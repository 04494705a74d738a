// Package apierror is the one error type of the HTTP API. It keeps what the client is told apart
// from the internal cause, which only the log sees.
package apierror

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is returned by handlers and services for every failure a client should understand.
type Error struct {
	Status  int
	Code    string // stable, machine-readable: "not_found", "validation_failed", ...
	Message string // for people; never contains secrets or internals
	Field   string // the offending input field, when there is one
	cause   error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.cause)
	}
	return e.Code + ": " + e.Message
}

// Unwrap exposes the internal cause to errors.Is/As (and to the log).
func (e *Error) Unwrap() error { return e.cause }

// WithCause attaches an internal cause that is logged but never shown to the client.
func (e *Error) WithCause(err error) *Error {
	c := *e
	c.cause = err
	return &c
}

// New builds an error with an explicit status and code.
func New(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports a bad input field: 400 validation_failed naming the field.
func Invalid(field, format string, args ...any) *Error {
	e := New(http.StatusBadRequest, "validation_failed", format, args...)
	e.Field = field
	return e
}

// BadRequest is a 400 with a specific code (e.g. "invalid_json").
func BadRequest(code, format string, args ...any) *Error {
	return New(http.StatusBadRequest, code, format, args...)
}

// NotFound is a 404 for a resource the caller may not see or that does not exist.
func NotFound(what string) *Error {
	return New(http.StatusNotFound, "not_found", "%s not found", what)
}

// IsNotFound reports whether err is a 404: for a caller that must tell nothing more than that
// (a preview host answers every refusal alike).
func IsNotFound(err error) bool {
	e, ok := As(err)
	return ok && e.Status == http.StatusNotFound
}

// Unauthorized is a 401 with the reason as code (token_expired, invalid_token, ...).
func Unauthorized(code, format string, args ...any) *Error {
	return New(http.StatusUnauthorized, code, format, args...)
}

// AccountDeleted refuses a request of a user whose account has been deleted meanwhile.
func AccountDeleted() *Error {
	return Unauthorized("account_deleted", "this account has been deleted")
}

// Forbidden is a 403.
func Forbidden(code, format string, args ...any) *Error {
	return New(http.StatusForbidden, code, format, args...)
}

// Conflict is a 409.
func Conflict(code, format string, args ...any) *Error {
	return New(http.StatusConflict, code, format, args...)
}

// Unavailable is a 503 for a dependency that does not answer.
func Unavailable(code, format string, args ...any) *Error {
	return New(http.StatusServiceUnavailable, code, format, args...)
}

// Internal is the 500 every unknown error becomes; the message reveals nothing.
func Internal() *Error {
	return New(http.StatusInternalServerError, "internal", "internal server error")
}

// Body is the JSON document written for every error.
type Body struct {
	Error Detail `json:"error"`
}

// Detail is the content of Body.
type Detail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id"`
}

// As finds an *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
