package envcrypt_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/sandbox/envcrypt"
)

func TestSealOpen(t *testing.T) {
	s, err := envcrypt.New(envcrypt.Params{Auth: config.Auth{JWTSecret: "jwt-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"TOKEN":"hunter2"}`)
	sealed, err := s.Seal(plain, []byte("row-1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	again, _ := s.Seal(plain, []byte("row-1"))
	if bytes.Equal(sealed, again) {
		t.Error("two seals of the same value are identical: nonce reuse")
	}
	tests := []struct {
		name    string
		sealer  func() *envcrypt.Sealer
		context string
		wantErr bool
	}{
		{"same key and context", func() *envcrypt.Sealer { return s }, "row-1", false},
		{"another row's context", func() *envcrypt.Sealer { return s }, "row-2", true},
		{"a dedicated key differs from the JWT-derived one", func() *envcrypt.Sealer {
			other, _ := envcrypt.New(envcrypt.Params{Secrets: config.Secrets{Key: "dedicated"}, Auth: config.Auth{JWTSecret: "jwt-secret"}})
			return other
		}, "row-1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sealer().Open(sealed, []byte(tt.context))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Open error = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !bytes.Equal(got, plain) {
				t.Fatalf("Open = %q", got)
			}
		})
	}
}

func TestNoKeyIsAConfigError(t *testing.T) {
	if _, err := envcrypt.New(envcrypt.Params{}); !errors.Is(err, envcrypt.ErrNoKey) {
		t.Fatalf("New without keys = %v", err)
	}
}
