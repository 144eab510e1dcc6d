package iam

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"math/big"
	"regexp"

	"github.com/sluice-dev/sluice/internal/secret"
)

// Secret value formats. Like GitHub's tokens, every secret Sluice issues
// has a recognisable prefix and ends in a checksum, so a scanner can find
// leaked values with a regular expression and reject look-alikes without
// asking the server:
//
//	API key:        slk_  + 30 base62 characters + 6 base62 checksum characters
//	client secret:  slcs_ + 30 base62 characters + 6 base62 checksum characters
//	app secret:     slas_ + 30 base62 characters + 6 base62 checksum characters
//	refresh token:  slrf_ + 30 base62 characters + 6 base62 checksum characters
//	                (POST /api/token and POST /identity/token alike)
//	flow basic:     slfb_ + 30 base62 characters + 6 base62 checksum characters
//	                (the password of a runtime's forceFlowBasicAuth, gateway.BasicPasswordPrefix)
//
// The checksum is CRC32 (IEEE) of the prefix and the 30 random characters,
// written as 6 base62 digits, zero-padded (package secret has the format).
// SecretPattern matches them all. (A runtime's bundle token, slrt_ + 43
// base64url characters, is an HMAC the control plane checks; it is
// package orchestrator's.)
const (
	APIKeyPrefix          = "slk_"
	ClientSecretPrefix    = "slcs_"
	AppSecretPrefix       = "slas_" // secrets of consumer apps' credentials (package apps)
	KeyRefreshTokenPrefix = "slrf_" // refresh tokens of IBM Cloud IAM's exchange (refresh.go) and of POST /api/token
)

// SecretPattern matches every secret Sluice issues (for leak scanners).
var SecretPattern = regexp.MustCompile(`\bsl(k|cs|as|rf|fb)_[0-9A-Za-z]{36}\b`)

func randomBase62(n int) string { return secret.RandomBase62(n) }

// newSecret returns a fresh secret with the given prefix.
func newSecret(prefix string) secret.Value { return secret.NewToken(prefix) }

// wellFormed checks the prefix, length, alphabet and checksum of a
// presented secret, so malformed values are refused before any look-up.
func wellFormed(v, prefix string) bool { return secret.WellFormed(v, prefix) }

// hashSecret is how issued secrets are stored. They carry 178 bits of
// randomness, so a fast hash suffices (no dictionary to guess from) and
// lets the key be looked up by its hash; passwords use argon2id instead.
func hashSecret(v secret.Value) string {
	h := sha256.Sum256([]byte(v.Reveal()))
	return hex.EncodeToString(h[:])
}

// hint is the part of a secret shown in lists: the prefix and 4 characters.
func hint(v secret.Value, prefix string) string {
	return v.Reveal()[:len(prefix)+4] + "…"
}

// IssueSecret returns a fresh secret with prefix (one of the *Prefix
// constants) together with the hash to store and the hint to show in
// lists, for domain packages that issue secrets of their own.
func IssueSecret(prefix string) (v secret.Value, hash, hintText string) {
	v = newSecret(prefix)
	return v, hashSecret(v), hint(v, prefix)
}

// SecretMatches reports whether a presented secret is well formed for
// prefix and hashes to hash, comparing in constant time.
func SecretMatches(v secret.Value, prefix, hash string) bool {
	return wellFormed(v.Reveal(), prefix) && subtle.ConstantTimeCompare([]byte(hashSecret(v)), []byte(hash)) == 1
}

// randomID returns n random bytes as lower-case hex.
func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("iam: system randomness failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// newInstanceID returns an id like App Connect's: 10 lower-case alphanumerics.
func newInstanceID() string {
	const alpha = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 10)
	max := big.NewInt(int64(len(alpha)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("iam: system randomness failed: " + err.Error())
		}
		b[i] = alpha[v.Int64()]
	}
	return string(b)
}
