package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/insien/orchestrator/sdk/go/api"
)

// Error is every answer of the API outside 2xx: the status and the service's error body
// {"error":{"code","message","field","request_id"}}. Use errors.As to reach it and switch on Code.
// An error event inside a stream that had started (exec, followed logs) is one too, with
// StatusCode 0: the stream's own status was 200.
type Error struct {
	// StatusCode is the HTTP status, e.g. 404.
	StatusCode int
	// Code is the service's stable machine-readable code, e.g. "not_found", "validation_failed",
	// "sandbox_not_running"; "http_<status>" when the answer did not carry the error shape (a proxy's page).
	Code string
	// Message is the service's human explanation.
	Message string
	// Field names the offending input field of a validation error, else "".
	Field string
	// RequestID is the request's X-Request-ID: quote it when reporting a problem.
	RequestID string
}

// Error formats as "insien: <code>: <message> (request <request_id>)".
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "insien: %s: %s", e.Code, e.Message)
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request %s)", e.RequestID)
	}
	return b.String()
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// readError reads an error answer's body (the caller closes it).
func readError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return responseError(resp, body)
}

// responseError turns a non-2xx answer into *Error. A 2xx answer reaches it only when its body
// was not what the operation promises; that is an error too.
func responseError(resp *http.Response, body []byte) error {
	if resp == nil {
		return fmt.Errorf("insien: no answer")
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		what := "a request"
		if resp.Request != nil {
			what = resp.Request.Method + " " + resp.Request.URL.Path
		}
		return fmt.Errorf("insien: unexpected %s answer to %s (Content-Type %q)", resp.Status, what, resp.Header.Get("Content-Type"))
	}
	e := &Error{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-ID")}
	var wire api.Error
	if json.Unmarshal(body, &wire) == nil && wire.Error.Code != "" {
		e.Code, e.Message = wire.Error.Code, wire.Error.Message
		if wire.Error.RequestId != "" {
			e.RequestID = wire.Error.RequestId
		}
		if wire.Error.Field != nil {
			e.Field = *wire.Error.Field
		}
		return e
	}
	e.Code = fmt.Sprintf("http_%d", resp.StatusCode)
	e.Message = strings.TrimSpace(string(body))
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// wireError is an error event's data in a stream: the same shape as an error answer.
func wireError(status int, data []byte) error {
	var wire api.Error
	if err := json.Unmarshal(data, &wire); err != nil || wire.Error.Code == "" {
		return fmt.Errorf("insien: the stream failed: %s", data)
	}
	e := &Error{StatusCode: status, Code: wire.Error.Code, Message: wire.Error.Message, RequestID: wire.Error.RequestId}
	if wire.Error.Field != nil {
		e.Field = *wire.Error.Field
	}
	return e
}
