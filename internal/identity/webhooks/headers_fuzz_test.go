package webhooks_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/insien/orchestrator/internal/identity/webhooks"
	"github.com/insien/orchestrator/internal/platform/apierror"
)

// FuzzParseHeaders feeds arbitrary svix headers to the parser: it never panics, refuses with a
// 400 in the error shape, and accepts only a bounded printable id with a Unix timestamp.
func FuzzParseHeaders(f *testing.F) {
	for _, s := range [][3]string{
		{"msg_2abcDEF", "1767225600", "v1,abc="},
		{"", "1767225600", "v1,abc="},
		{"msg_1", "", "v1,abc="},
		{"msg_1", "1767225600", ""},
		{"msg_1", "-5", "v1,x"},
		{"msg_1", "1.5", "v1,x"},
		{"msg_1", "99999999999999999999", "v1,x"},
		{"msg 1", "1767225600", "v1,x"},
		{"msg_\x00", "1767225600", "v1,x"},
		{"msg_é", "1767225600", "v1,x"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, id, ts, sig string) {
		h := http.Header{}
		h.Set("svix-id", id)
		h.Set("svix-timestamp", ts)
		h.Set("svix-signature", sig)
		d, err := webhooks.ParseHeaders(h)
		if err != nil {
			apiErr, ok := apierror.As(err)
			if !ok || apiErr.Status != http.StatusBadRequest || apiErr.Message == "" {
				t.Fatalf("%q %q %q: %v (%T), want a 400 in the error shape", id, ts, sig, err, err)
			}
			return
		}
		if d.ID != id || id == "" || len(id) > 256 || sig == "" {
			t.Fatalf("accepted id %q (parsed %q) with signature %q", id, d.ID, sig)
		}
		for _, r := range id {
			if r <= ' ' || r > '~' {
				t.Fatalf("accepted id %q with %q", id, r)
			}
		}
		if secs, perr := strconv.ParseInt(ts, 10, 64); perr != nil || secs < 0 || d.Timestamp.Unix() != secs {
			t.Fatalf("timestamp %q parsed as %v", ts, d.Timestamp)
		}
	})
}
