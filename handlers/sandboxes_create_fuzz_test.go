package handlers

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/insien/orchestrator/internal/platform/apierror"
)

// FuzzCreateInput decodes create requests as POST /api/sandboxes does, without the stack: any
// body and Idempotency-Key either decode to an input that survives a round trip through JSON,
// or are a 4xx in the one error shape; nothing panics.
func FuzzCreateInput(f *testing.F) {
	gin.SetMode(gin.TestMode)
	for _, body := range []string{
		``, `{}`, `[]`, `null`, `{"cpu":1e-9}`, `{"cpu":1e-5}`, `{"cpu":0.01}`, `{"cpu":"1"}`,
		`{"timeout_seconds":1.5}`, `{"timeout_seconds":"x"}`, `{"memory_mb":1e30}`,
		`{"env":{"BIG":"x"},"metadata":{"k":1}}`, `{"command":["sh","-c","sleep 1; exit 3"]}`,
		`{"image":"insien/sandbox:busybox","auto_extend":false}`, `{"unknown":1}`, `{} {}`, `{"cpu":0.5`,
		"{\"env\":{\"A\":\"\\u0000\"}}", `{"metadata":{"a":"1","b":"2"},"env":{"TOKEN":"one"},"cpu":0.5}`,
	} {
		f.Add([]byte(body), "key-1")
	}
	f.Add([]byte(`{}`), "k\x00")
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodPost, "/api/sandboxes", bytes.NewReader(body))
		c.Request.Header.Set("Content-Type", "application/json")
		c.Request.Header.Set("Idempotency-Key", key)
		in, err := createInput(c)
		if err != nil {
			e, ok := apierror.As(err)
			if !ok || e.Status < 400 || e.Status > 499 || e.Message == "" {
				t.Fatalf("body %q: error %v, want a 4xx apierror", body, err)
			}
			return
		}
		if in.IdempotencyKey != c.Request.Header.Get("Idempotency-Key") {
			t.Fatalf("Idempotency-Key %q became %q", key, in.IdempotencyKey)
		}
		// What was decoded is what the client meant: encoding it again decodes to the same input.
		req := createSandboxRequest{Image: in.Image, Command: in.Command, Env: in.Env, Metadata: in.Metadata,
			TimeoutSeconds: in.TimeoutSeconds, CPU: in.CPU, MemoryMB: in.MemoryMB, AutoExtend: in.AutoExtend}
		raw, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", req, err)
		}
		var again createSandboxRequest
		if err := json.Unmarshal(raw, &again); err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("body %q decoded to %+v, which does not survive a round trip (%+v, %v)", body, req, again, err)
		}
	})
}
