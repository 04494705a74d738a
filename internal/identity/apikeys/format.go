// Package apikeys issues, verifies and revokes the API keys programs use instead of a Clerk
// session. Keys are high-entropy, so a SHA-256 digest is all that is stored and all a lookup needs.
package apikeys

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
)

// Prefix starts every key, so secret scanners and people recognise one.
const Prefix = "isk_"

const (
	secretBytes   = 32
	bodyLen       = 43 // base64url of 32 bytes, unpadded
	checksumLen   = 6  // base64url of a CRC-32, unpadded
	keyLen        = len(Prefix) + bodyLen + checksumLen
	displayPrefix = len(Prefix) + 8
)

var b64 = base64.RawURLEncoding

// Generate returns a new key: isk_ + 32 random bytes + a CRC-32 checksum, all URL-safe.
func Generate() (string, error) {
	secret := make([]byte, secretBytes)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	body := b64.EncodeToString(secret)
	return Prefix + body + checksum(body), nil
}

// WellFormed reports whether raw has a key's shape and a matching checksum: a mistyped or
// truncated key is refused here, without a database lookup.
func WellFormed(raw string) bool {
	if len(raw) != keyLen || !strings.HasPrefix(raw, Prefix) {
		return false
	}
	body := raw[len(Prefix) : len(Prefix)+bodyLen]
	if _, err := b64.DecodeString(body); err != nil {
		return false
	}
	return raw[len(Prefix)+bodyLen:] == checksum(body)
}

// Digest is what the database stores and the cache is keyed by.
func Digest(raw string) []byte {
	sum := sha256.Sum256([]byte(raw))
	return sum[:]
}

// DisplayPrefix and LastFour let a user recognise a key without revealing it.
func DisplayPrefix(raw string) string { return raw[:displayPrefix] }

// LastFour is the key's last four characters.
func LastFour(raw string) string { return raw[len(raw)-4:] }

func checksum(body string) string {
	var buf [4]byte
	binary.BigEndian.PutUint32(buf[:], crc32.ChecksumIEEE([]byte(body)))
	return b64.EncodeToString(buf[:])
}
