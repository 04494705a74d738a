// Package envcrypt encrypts small values at rest (sandbox env) with XChaCha20-Poly1305 under a
// key derived from configuration, so a database dump alone reveals nothing.
package envcrypt

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"go.uber.org/fx"
	"go.uber.org/zap"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/insien/orchestrator/internal/platform/config"
)

// ErrNoKey means neither secrets.key (ORCH_SECRETS_KEY) nor auth.jwt_secret (JWT_SECRET) is set.
var ErrNoKey error = &config.Error{Key: "secrets.key", Reason: "set ORCH_SECRETS_KEY (or JWT_SECRET) to encrypt sandbox env at rest"}

// Sealer encrypts and decrypts with one derived key.
type Sealer struct{ aead cipher.AEAD }

// developmentRoot lets `go tool task dev` run without any secret configured. Never in production.
const developmentRoot = "insecure-development-only-key"

// Params are the sealer's dependencies.
type Params struct {
	fx.In
	Secrets config.Secrets
	Auth    config.Auth
	App     config.App
	Log     *zap.Logger // warns when development mode falls back to the known key
}

// New derives the key with HKDF-SHA256 from ORCH_SECRETS_KEY, or from JWT_SECRET when that is
// unset. In development mode a missing key falls back to a fixed, publicly known one, with a
// warning.
func New(p Params) (*Sealer, error) {
	root := p.Secrets.Key.Reveal()
	if root == "" {
		root = p.Auth.JWTSecret.Reveal()
	}
	if root == "" && p.App.Development() {
		p.Log.Warn("no ORCH_SECRETS_KEY or JWT_SECRET: encrypting sandbox env with a development key anyone knows")
		root = developmentRoot
	}
	if root == "" {
		return nil, ErrNoKey
	}
	key, err := hkdf.Key(sha256.New, []byte(root), []byte("insien-orchestrator"), "sandbox-env/v1", chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving the env key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("building the env cipher: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to context (e.g. the row id), so a ciphertext copied onto another
// row does not decrypt. The random 24-byte nonce is prepended.
func (s *Sealer) Seal(plaintext, context []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("making a nonce: %w", err)
	}
	return s.aead.Seal(nonce, nonce, plaintext, context), nil
}

// Open decrypts what Seal produced for the same context.
func (s *Sealer) Open(sealed, context []byte) ([]byte, error) {
	if len(sealed) < s.aead.NonceSize() {
		return nil, errors.New("secrets: ciphertext too short")
	}
	nonce, ciphertext := sealed[:s.aead.NonceSize()], sealed[s.aead.NonceSize():]
	plain, err := s.aead.Open(nil, nonce, ciphertext, context)
	if err != nil {
		return nil, fmt.Errorf("opening a sealed value: %w", err)
	}
	return plain, nil
}
