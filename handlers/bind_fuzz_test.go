package handlers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/insien/orchestrator/internal/platform/apierror"
)

// setTimeoutRequest mirrors the anonymous body of POST /api/sandboxes/{id}/timeout.
type setTimeoutRequest struct {
	TimeoutSeconds *int `json:"timeout_seconds"`
}

// requestTypes are the body of every route that takes JSON.
var requestTypes = map[string]func() any{
	"createSandboxRequest": func() any { return new(createSandboxRequest) },
	"execRequest":          func() any { return new(execRequest) },
	"createKeyRequest":     func() any { return new(createKeyRequest) },
	"setTimeoutRequest":    func() any { return new(setTimeoutRequest) },
}

// goSyntax finds Go's vocabulary in a message: a type name, a kind or the decoder's own words.
var goSyntax = regexp.MustCompile(`handlers\.|main\.|map\[|\[\]|\*|\bint(8|16|32|64)?\b|\buint|\bfloat(32|64)\b|\bstruct\b|\bGo\b|json:|unmarshal`)

// FuzzBindJSON decodes arbitrary bodies into every request type: bindJSON must never panic,
// must accept only a JSON object, and must explain every refusal in the API's terms (field
// names and JSON types), never in Go's.
func FuzzBindJSON(f *testing.F) {
	for _, seed := range []string{
		``, ` `, `null`, `[]`, `"x"`, `1`, `true`, `{`, `{}`, `{}{}`, `{}}`, `{"a":1}`, `[{"cmd":["ls"]}]`,
		`{"timeout_seconds":"60"}`, `{"timeout_seconds":1.5}`, `{"timeout_seconds":1e100}`, `{"timeout_seconds":-1}`,
		`{"cpu":"1"}`, `{"cpu":1e-9}`, `{"cpu":1e400}`, `{"memory_mb":1.5}`, `{"memory_mb":"256"}`,
		`{"metadata":{"team":1}}`, `{"metadata":[]}`, `{"env":{"A":null}}`, `{"env":"A=1"}`,
		`{"command":"sleep 1"}`, `{"command":[1]}`, `{"auto_extend":"yes"}`, `{"image":5}`,
		`{"cmd":"ls"}`, `{"cmd":[["ls"]]}`, `{"cwd":1}`, `{"stdin":5}`,
		`{"name":5}`, `{"scopes":"x"}`, `{"expires_at":"tomorrow"}`, `{"expires_at":5}`, `{"expires_at":null}`,
		`{"TIMEOUT_SECONDS":"x"}`, `{"":""}`, "{\"name\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	gin.SetMode(gin.TestMode)
	f.Fuzz(func(t *testing.T, body []byte) {
		for name, newDst := range requestTypes {
			dst := newDst()
			c, _ := gin.CreateTestContext(httptest.NewRecorder())
			c.Request = httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			c.Request.Header.Set("Content-Type", "application/json")
			err := bindJSON(c, dst)
			if err == nil {
				trimmed := bytes.TrimSpace(body)
				if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
					t.Fatalf("%s accepted %q, which is not one JSON object", name, body)
				}
				continue
			}
			apiErr, ok := apierror.As(err)
			if !ok || apiErr.Status != http.StatusBadRequest || apiErr.Message == "" {
				t.Fatalf("%s: %q gave %v (%T), want a 400 in the error shape", name, body, err, err)
			}
			switch apiErr.Code {
			case "invalid_json":
				if goSyntax.MatchString(apiErr.Message) {
					t.Fatalf("%s: %q: message %q speaks Go", name, body, apiErr.Message)
				}
			case "validation_failed":
				if _, known := jsonField(reflect.TypeOf(dst).Elem(), apiErr.Field); !known {
					if apiErr.Message != fmt.Sprintf("unknown field %q", apiErr.Field) {
						t.Fatalf("%s: %q: field %q is not a request field, message %q", name, body, apiErr.Field, apiErr.Message)
					}
					continue
				}
				if !strings.HasPrefix(apiErr.Message, apiErr.Field+" ") || goSyntax.MatchString(apiErr.Message) {
					t.Fatalf("%s: %q: message %q must name %s in JSON terms", name, body, apiErr.Message, apiErr.Field)
				}
			default:
				t.Fatalf("%s: %q: unexpected code %s", name, body, apiErr.Code)
			}
		}
	})
}
