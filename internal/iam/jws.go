package iam

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// compactSigner writes access tokens as JWS compact serializations (RFC
// 7515 §7.1) itself. Every token of a key has the same protected header,
// so it is encoded once, when the key is loaded: go-jose's signer
// marshalled the header map, copied the payload into a JSONWebSignature
// and base64-encoded each part into strings of their own on every token
// exchange — a tenth of the exchange's CPU beside the signature itself.
// Verification stays with go-jose (Tokens.verify), which also checks every
// token minted here in the tests.
type compactSigner struct {
	// prefix is the encoded protected header and the dot after it: the
	// start of every token's signing input.
	prefix string
	sign1  func(signingInput []byte) ([]byte, error)
}

// joseHeader is the protected header of access tokens, its fields in the
// order go-jose writes them (alphabetical), so tokens look as before.
type joseHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

func newCompactSigner(alg jose.SignatureAlgorithm, kid string, priv any) (*compactSigner, error) {
	h, err := json.Marshal(joseHeader{Alg: string(alg), Kid: kid, Typ: tokenType})
	if err != nil {
		return nil, err
	}
	s := &compactSigner{prefix: base64.RawURLEncoding.EncodeToString(h) + "."}
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		if alg != jose.EdDSA {
			return nil, fmt.Errorf("an Ed25519 key cannot sign %s", alg)
		}
		// RFC 8037 §3.1: the signature of the signing input itself.
		s.sign1 = func(in []byte) ([]byte, error) { return ed25519.Sign(k, in), nil }
	case *rsa.PrivateKey:
		if alg != jose.RS256 {
			return nil, fmt.Errorf("an RSA key cannot sign %s", alg)
		}
		// RFC 7518 §3.3: RSASSA-PKCS1-v1_5 over SHA-256 of the input.
		s.sign1 = func(in []byte) ([]byte, error) {
			d := sha256.Sum256(in)
			return rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
		}
	default:
		return nil, fmt.Errorf("keys of type %T cannot sign tokens", priv)
	}
	return s, nil
}

// sign returns header.payload.signature, each part base64url without
// padding, built in one buffer.
func (s *compactSigner) sign(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	// The signature (64 bytes for Ed25519, 256 for RSA-2048) is appended
	// into the same buffer when it fits.
	buf := make([]byte, 0, len(s.prefix)+enc.EncodedLen(len(payload))+1+enc.EncodedLen(512))
	buf = append(buf, s.prefix...)
	buf = enc.AppendEncode(buf, payload)
	sig, err := s.sign1(buf)
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}
