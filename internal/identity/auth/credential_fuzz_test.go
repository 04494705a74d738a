package auth

import (
	"net/http"
	"strings"
	"testing"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/platform/apierror"
)

// FuzzParseCredential feeds arbitrary Authorization and X-API-Key headers (each possibly sent
// twice) to the credential parser: it never panics, refuses with a 401 in the error shape, never
// echoes the credential in its message, and yields a credential only when exactly one was sent.
func FuzzParseCredential(f *testing.F) {
	key, err := apikeys.Generate()
	if err != nil {
		f.Fatal(err)
	}
	seeds := []struct {
		authz, authz2, apiKey, apiKey2 string
	}{
		{"", "", "", ""},
		{"Bearer " + key, "", "", ""},
		{"", "", key, ""},
		{"", "", key, key},                         // two X-API-Key headers
		{"Bearer a.b.c", "Bearer " + key, "", ""},  // two Authorization headers
		{"Bearer a.b.c", "", key, ""},              // both kinds
		{"", "", key + ", " + key, ""},             // merged by a proxy
		{"Bearer a.b.c, Bearer d.e.f", "", "", ""}, // merged by a proxy
		{"bearer a.b.c", "", "", ""},               // the scheme is case-insensitive
		{"Basic dXNlcjpwYXNz", "", "", ""},         // another scheme
		{"Bearer", "", "", ""}, {"Bearer    ", "", "", ""}, {" ", "", "  ", ""},
		{"Bearer a b", "", "", ""}, {"Bearer\ta.b.c", "", "", ""}, {"Bearer isk_", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.authz, s.authz2, s.apiKey, s.apiKey2)
	}
	f.Fuzz(func(t *testing.T, authz, authz2, apiKey, apiKey2 string) {
		h := http.Header{}
		for name, values := range map[string][]string{"Authorization": {authz, authz2}, "X-API-Key": {apiKey, apiKey2}} {
			for _, v := range values {
				if v != "" {
					h.Add(name, v)
				}
			}
		}
		cred, err := parseCredential(h)
		sent := len(present(h.Values("Authorization"))) + len(present(h.Values("X-API-Key")))
		if err != nil {
			apiErr, ok := apierror.As(err)
			if !ok || apiErr.Status != http.StatusUnauthorized || apiErr.Code == "" || apiErr.Message == "" {
				t.Fatalf("headers %q: %v (%T), want a 401 in the error shape", h, err, err)
			}
			for _, secret := range []string{authz, authz2, apiKey, apiKey2} {
				if s := strings.TrimSpace(secret); len(s) > 8 && strings.Contains(apiErr.Message, s) {
					t.Fatalf("message %q echoes a credential", apiErr.Message)
				}
			}
			if sent > 1 && apiErr.Code != "ambiguous_credentials" {
				t.Fatalf("headers %q: %d credentials gave %s, want ambiguous_credentials", h, sent, apiErr.Code)
			}
			return
		}
		if sent != 1 {
			t.Fatalf("headers %q: accepted %d credentials as one", h, sent)
		}
		if cred.token == "" || strings.Contains(cred.token, ",") || (!cred.apiKey && strings.ContainsAny(cred.token, " \t")) {
			t.Fatalf("headers %q: token %q", h, cred.token)
		}
		if cred.apiKey != (len(present(h.Values("X-API-Key"))) > 0 || strings.HasPrefix(cred.token, apikeys.Prefix)) {
			t.Fatalf("headers %q: token %q read as apiKey=%v", h, cred.token, cred.apiKey)
		}
	})
}

// FuzzAPIKeyFormat checks the shape test that refuses mistyped keys before any lookup: it never
// panics, accepts every generated key, and refuses a generated key with any one character changed
// (the CRC-32 catches every single-character error).
func FuzzAPIKeyFormat(f *testing.F) {
	key, err := apikeys.Generate()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(key, uint16(0), byte('A'))
	f.Add(key, uint16(len(key)-1), byte('-'))
	f.Add("isk_", uint16(3), byte('_'))
	f.Add(strings.Repeat("A", len(key)), uint16(10), byte(0))
	f.Add(key+" ", uint16(5), byte(0xff))
	f.Fuzz(func(t *testing.T, raw string, at uint16, c byte) {
		if apikeys.WellFormed(raw) && !strings.HasPrefix(raw, apikeys.Prefix) {
			t.Fatalf("%q accepted without the prefix", raw)
		}
		fresh, err := apikeys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !apikeys.WellFormed(fresh) {
			t.Fatalf("generated key %q refused", fresh)
		}
		i := int(at) % len(fresh)
		if fresh[i] == c {
			return
		}
		mutated := fresh[:i] + string([]byte{c}) + fresh[i+1:]
		if apikeys.WellFormed(mutated) {
			t.Fatalf("%q (one character changed at %d) accepted", mutated, i)
		}
	})
}
