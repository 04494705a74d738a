package middleware

import "testing"

// FuzzRequestID: an incoming X-Request-ID is echoed in headers and logged, so only printable
// ASCII of at most 128 bytes is kept; the check never panics.
func FuzzRequestID(f *testing.F) {
	for _, seed := range []string{"", "3f0c6a0e-8a52-4c39-9d8e-6b1f3b1e2c4d", "a b", "a\nb", "é", string(make([]byte, 129))} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !validRequestID(id) {
			return
		}
		if id == "" || len(id) > 128 {
			t.Fatalf("kept %q (%d bytes)", id, len(id))
		}
		for i := range len(id) {
			if id[i] < 0x21 || id[i] > 0x7e {
				t.Fatalf("kept %q with byte %#x", id, id[i])
			}
		}
	})
}
