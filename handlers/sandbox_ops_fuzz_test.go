package handlers

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/interact"
)

// split cuts data into chunks at the offsets cuts suggests, as output arrives from a command.
func split(data, cuts []byte) [][]byte {
	var chunks [][]byte
	for _, c := range cuts {
		if len(data) == 0 {
			break
		}
		n := min(int(c)%8+1, len(data))
		chunks = append(chunks, data[:n])
		data = data[n:]
	}
	if len(data) > 0 {
		chunks = append(chunks, data)
	}
	return chunks
}

// FuzzWriteJSONString: output escaped chunk by chunk is byte for byte what encoding/json makes
// of the whole, wherever the chunks split a character.
func FuzzWriteJSONString(f *testing.F) {
	f.Add([]byte("hello\n"), []byte{1, 2})
	f.Add([]byte("<script>&\"\\\u2028\u2029\x00\x1f\x7f"), []byte{3, 3, 3})
	f.Add([]byte("é中😀"), []byte{0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xe2, 0x80, 0xe2, 0x80, 0xa8, 0xff, 0xc3}, []byte{1, 0, 1})
	f.Add([]byte("y\ny\ny\n"), []byte{})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var got bytes.Buffer
		w := bufio.NewWriter(&got)
		writeJSONString(w, split(data, cuts), len(data))
		_ = w.Flush()
		want, _ := json.Marshal(string(data))
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%q in chunks %v:\n got %s\nwant %s", data, split(data, cuts), got.Bytes(), want)
		}
	})
}

// FuzzWriteOutput: the exec answer's stdout decodes back to the bytes the command printed (minus
// a character cut short by truncation), in the encoding it names.
func FuzzWriteOutput(f *testing.F) {
	f.Add([]byte("plain text\n"), []byte{2}, false)
	f.Add([]byte{0xff, 0xfe}, []byte{0}, false)
	f.Add([]byte("cut é"), []byte{5}, true)
	f.Add([]byte{'a', 0xe2, 0x82}, []byte{1, 1}, true)
	f.Add([]byte{'a', 0xe2, 0x82}, []byte{1, 1}, false)
	f.Fuzz(func(t *testing.T, data, cuts []byte, truncated bool) {
		out := &interact.Output{}
		for _, c := range split(data, cuts) {
			_, _ = out.Write(c)
		}
		if out.Len() != len(data) {
			t.Fatalf("Output holds %d of %d bytes", out.Len(), len(data))
		}
		rec := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(rec)
		if err := writeExecJSON(c.Writer, out, &interact.Output{}, runtimes.ExecResult{Truncated: truncated}); err != nil {
			t.Fatal(err)
		}
		var res struct {
			Stdout         string `json:"stdout"`
			StdoutEncoding string `json:"stdout_encoding"`
			Stderr         string `json:"stderr"`
			StderrEncoding string `json:"stderr_encoding"`
			execEnd
		}
		dec := json.NewDecoder(rec.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&res); err != nil {
			t.Fatalf("not JSON: %v: %s", err, rec.Body.String())
		}
		got := []byte(res.Stdout)
		want := data
		switch res.StdoutEncoding {
		case "base64":
			var err error
			if got, err = base64.StdEncoding.DecodeString(res.Stdout); err != nil {
				t.Fatal(err)
			}
		case "utf-8":
			if truncated {
				want = data[:completeUTF8(data)]
			}
			if !utf8.Valid(want) {
				t.Fatalf("%q sent as utf-8", data)
			}
		default:
			t.Fatalf("encoding %q", res.StdoutEncoding)
		}
		if !bytes.Equal(got, want) || res.Stderr != "" || res.StderrEncoding != "utf-8" || res.Truncated != truncated {
			t.Fatalf("%q (truncated %v) came back as %+v", data, truncated, res)
		}
		if res.StdoutEncoding == "base64" && utf8.Valid(data) {
			t.Fatalf("valid UTF-8 %q sent as base64", data)
		}
	})
}

// FuzzExecRequest: whatever the body, decoding an exec request either succeeds or is a client
// error in the one error shape; never a panic or a 500.
func FuzzExecRequest(f *testing.F) {
	for _, seed := range []string{
		`{"cmd":["ls","-l"]}`, `{"cmd":"echo hi"}`, `[]`, `{"cmd":["true"],"timeout_seconds":"5"}`,
		`{"cmd":["true"],"timeout_seconds":1e99}`, `{"cmd":["true"],"env":{"A":1}}`, `{"cmd":["true"],"cwd":"/nope"}`,
		`{"cmd":["true"],"shell":"bash"}`, `{"cmd":["a"]} {}`, ``, `{"cmd":["a\u0000b"]}`, `{"stdin":[1]}`, `null`,
	} {
		f.Add([]byte(seed))
	}
	gin.SetMode(gin.TestMode)
	f.Fuzz(func(t *testing.T, body []byte) {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodPost, "/api/sandboxes/x/exec", bytes.NewReader(body))
		c.Request.Header.Set("Content-Type", "application/json")
		var req execRequest
		err := bindJSON(c, &req)
		if err == nil {
			in := req.input()
			if len(in.Cmd) != len(req.Cmd) || in.Cwd != req.Cwd {
				t.Fatalf("input() lost fields of %+v", req)
			}
			return
		}
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return
		}
		e, ok := apierror.As(err)
		if !ok || e.Status < 400 || e.Status >= 500 || e.Message == "" {
			t.Fatalf("%q: %v is not a client error in the one shape", body, err)
		}
	})
}

// TestEscapeJSONAllocatesNothing: escaping output byte by byte must not allocate per byte (10 MiB
// of quotes would be millions of objects).
func TestEscapeJSONAllocatesNothing(t *testing.T) {
	data := []byte(strings.Repeat("\"\\\x01<\u2028y\n", 1000))
	w := bufio.NewWriter(io.Discard)
	if n := testing.AllocsPerRun(10, func() { escapeJSON(w, data) }); n != 0 {
		t.Errorf("escapeJSON allocates %v times per call", n)
	}
}
