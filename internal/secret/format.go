package secret

import (
	"crypto/rand"
	"hash/crc32"
	"math/big"
	"strings"
)

// Token format: every secret Sluice issues is a prefix, TokenRandom random
// base62 characters and TokenChecksum base62 characters of the CRC32
// (IEEE) of everything before them, zero-padded. The prefix lets leak
// scanners find a value; the checksum lets them, and Sluice, discard a
// look-alike without any look-up. The prefixes are listed with
// iam.SecretPattern; this file is only the format, so that the runtime's
// gateway checks it without the control plane's packages.
const (
	TokenRandom   = 30
	TokenChecksum = 6
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// RandomBase62 returns n characters from crypto/rand over 0-9A-Za-z.
func RandomBase62(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(base62)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("secret: system randomness failed: " + err.Error())
		}
		b[i] = base62[v.Int64()]
	}
	return string(b)
}

// Checksum is the checksum characters of body (prefix and random part).
func Checksum(body string) string {
	c := uint64(crc32.ChecksumIEEE([]byte(body)))
	out := make([]byte, TokenChecksum)
	for i := TokenChecksum - 1; i >= 0; i-- {
		out[i] = base62[c%62]
		c /= 62
	}
	return string(out)
}

// NewToken returns a fresh secret with prefix in the token format.
func NewToken(prefix string) Value {
	body := prefix + RandomBase62(TokenRandom)
	return New(body + Checksum(body))
}

// WellFormed checks the prefix, length, alphabet and checksum of a
// presented token, so malformed values are refused before any look-up.
func WellFormed(v, prefix string) bool {
	if !strings.HasPrefix(v, prefix) || len(v) != len(prefix)+TokenRandom+TokenChecksum {
		return false
	}
	for i := len(prefix); i < len(v); i++ {
		if strings.IndexByte(base62, v[i]) < 0 {
			return false
		}
	}
	body := v[:len(v)-TokenChecksum]
	return Checksum(body) == v[len(v)-TokenChecksum:]
}
