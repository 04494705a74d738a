// Package envcrypt encrypts small values at rest (sandbox env) with XChaCha20-Poly1305 under a
// key derived from configuration, so a database dump alone reveals nothing.
package envcrypt

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"

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

// NewFromConfig is New for the Fx graph: in development mode a missing key falls back to a fixed,
// publicly known one, with a warning.
func NewFromConfig(s config.Secrets, a config.Auth, app config.App, log *zap.Logger) (*Sealer, error) {
	if app.Development() && s.Key == "" && a.JWTSecret == "" {
		log.Warn("no ORCH_SECRETS_KEY or JWT_SECRET: encrypting sandbox env with a development key anyone knows")
		s.Key = developmentRoot
	}
	return New(s, a)
}

// New derives the key with HKDF-SHA256 from ORCH_SECRETS_KEY, or from JWT_SECRET when that is unset.
func New(s config.Secrets, a config.Auth) (*Sealer, error) {
	root := s.Key.Reveal()
	if root == "" {
		root = a.JWTSecret.Reveal()
	}
	if root == "" {
		return nil, ErrNoKey
	}
	key, err := hkdf.Key(sha256.New, []byte(root), []byte("insien-orchestrator"), "sandbox-env/v1", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to context (e.g. the row id), so a ciphertext copied onto another
// row does not decrypt. The random 24-byte nonce is prepended.
func (s *Sealer) Seal(plaintext, context []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plaintext, context), nil
}

// Open decrypts what Seal produced for the same context.
func (s *Sealer) Open(sealed, context []byte) ([]byte, error) {
	if len(sealed) < s.aead.NonceSize() {
		return nil, errors.New("secrets: ciphertext too short")
	}
	nonce, ciphertext := sealed[:s.aead.NonceSize()], sealed[s.aead.NonceSize():]
	return s.aead.Open(nil, nonce, ciphertext, context)
}
