package testenv

import (
	"fmt"
	"net/http"
	"testing"
)

// recorder is a testing.TB that keeps what would have failed the test.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Helper() {}

// TestCheckResponse: a response the spec describes passes; an undocumented status, a body that
// does not fit its schema or a wrong content type fails.
func TestCheckResponse(t *testing.T) {
	get := func(path string) *http.Request {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:1/"+path, nil)
		return req
	}
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name   string
		req    *http.Request
		status int
		header http.Header
		body   string
		fails  bool
	}{
		{"documented", get("health"), 200, jsonHeader, `{"status":"ok"}`, false},
		{"documented error", get("api/sandboxes/6d6b0b7e-4a73-4b7d-9a8c-0e1f2a3b4c5d"), 404, jsonHeader,
			`{"error":{"code":"not_found","message":"no such sandbox","request_id":"r"}}`, false},
		{"undocumented status", get("api/sandboxes/6d6b0b7e-4a73-4b7d-9a8c-0e1f2a3b4c5d"), 418, jsonHeader, `{}`, true},
		{"body off its schema", get("api/sandboxes/6d6b0b7e-4a73-4b7d-9a8c-0e1f2a3b4c5d"), 200, jsonHeader, `{"id":3}`, true},
		{"a path the spec does not know is left to the route test", get("nowhere"), 404, jsonHeader, `{}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			CheckResponse(r, tt.req, tt.status, tt.header, []byte(tt.body))
			if failed := len(r.errors) > 0; failed != tt.fails {
				t.Errorf("failed = %v (%v), want %v", failed, r.errors, tt.fails)
			}
		})
	}
}
