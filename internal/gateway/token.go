package gateway

import (
	"encoding/json"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// tokenClaims are the claims of an app's access token that the gateway
// reads (RFC 9068 §2.2; the control plane's iam package mints them).
type tokenClaims struct {
	Issuer   string `json:"iss"`
	Audience string `json:"aud"`
	Subject  string `json:"sub"`
	ClientID string `json:"client_id"`
	Expiry   int64  `json:"exp"`
	Scope    string `json:"scope"`
	Role     string `json:"role"`
}

// maxTokens bounds the verified-token cache of one state; full, it starts over.
const maxTokens = 10000

// verifyToken checks a bearer token offline against the state's JWKS:
// signature, type at+jwt (RFC 9068 §4), issuer, audience, expiry, and that
// it is an app's token (no role: management tokens never call published
// APIs as an app). Whether its credential still exists is the caller's
// check, so revocation needs no token list. Verified signatures are
// cached per state; expiry is checked on every use.
func (c *compiled) verifyToken(raw string, now time.Time) (tokenClaims, bool) {
	c.tmu.Lock()
	tc, hit := c.tokens[raw]
	c.tmu.Unlock()
	if !hit {
		var ok bool
		if tc, ok = c.verifySignature(raw); !ok {
			return tc, false
		}
		c.tmu.Lock()
		if len(c.tokens) >= maxTokens {
			c.tokens = make(map[string]tokenClaims, 256)
		}
		c.tokens[raw] = tc
		c.tmu.Unlock()
	}
	return tc, now.Unix() < tc.Expiry
}

func (c *compiled) verifySignature(raw string) (tokenClaims, bool) {
	var tc tokenClaims
	if len(c.keys.Keys) == 0 {
		return tc, false
	}
	obj, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.EdDSA, jose.RS256})
	if err != nil || len(obj.Signatures) != 1 {
		return tc, false
	}
	h := obj.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "at+jwt" {
		return tc, false
	}
	keys := c.keys.Key(h.KeyID)
	if len(keys) != 1 || keys[0].Algorithm != h.Algorithm {
		return tc, false
	}
	payload, err := obj.Verify(keys[0].Key)
	if err != nil || json.Unmarshal(payload, &tc) != nil {
		return tc, false
	}
	if (c.issuer != "" && tc.Issuer != c.issuer) || (c.audience != "" && tc.Audience != c.audience) ||
		tc.ClientID == "" || tc.Role != "" {
		return tc, false
	}
	return tc, true
}
