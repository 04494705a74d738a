package testenv

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The spec every response the tests receive is held to: openapi.yaml at the repository's root.
var spec struct {
	once   sync.Once
	router routers.Router
	err    error
}

func specRouter() (routers.Router, error) {
	spec.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(filepath.Join(filepath.Dir(file), "..", "..", "openapi.yaml"))
		if err == nil {
			err = doc.Validate(context.Background())
		}
		if err != nil {
			spec.err = err
			return
		}
		spec.router, spec.err = gorillamux.NewRouter(doc)
	})
	return spec.router, spec.err
}

func init() {
	// Streams are checked by their status and headers; their bodies are the tests' business.
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.FileBodyDecoder)
}

// CheckResponse fails t when a response of the service is not what openapi.yaml says that
// operation answers: a status it does not list, a header or a body that does not fit. Requests are
// not checked (tests send bad ones on purpose); a path the spec does not know is not checked here
// (app's TestOpenAPICoversEveryRoute holds routes and spec together).
func CheckResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	router, err := specRouter()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  status,
		Header:  header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		t.Errorf("%s %s answered %d, which openapi.yaml does not describe: %v\nbody: %.300s", req.Method, req.URL.Path, status, err, body)
	}
}

// readChecked reads resp whole and, in tests, checks it against the spec. Benchmarks skip the
// check: kin-openapi compiles a JSON Schema validator for every response it checks (a profile of
// 20 concurrent warm creates put an eighth of all CPU there), and that CPU, spent on the same two
// cores as the service, would be counted against the service.
func readChecked(t testing.TB, req *http.Request, resp *http.Response) []byte {
	t.Helper()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	if _, benchmark := t.(*testing.B); !benchmark {
		CheckResponse(t, req, resp.StatusCode, resp.Header, data)
	}
	return data
}
