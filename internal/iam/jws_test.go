package iam

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
)

// TestCompactSignerMatchesGoJose holds the hand-built JWS to go-jose's:
// for both algorithms the protected header is byte for byte the one
// go-jose's signer writes, the token verifies with go-jose against the
// public key, and — both signatures being deterministic (RFC 8032,
// PKCS #1 v1.5) — the whole token equals go-jose's.
func TestCompactSignerMatchesGoJose(t *testing.T) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"iss":"http://sluice.test","sub":"user:alice","exp":1}`)
	for _, tc := range []struct {
		alg       jose.SignatureAlgorithm
		priv      any
		pub       any
		sameWhole bool
	}{
		{jose.EdDSA, ed, ed.Public(), true},
		{jose.RS256, rk, rk.Public(), true}, // PKCS #1 v1.5 is deterministic too
	} {
		t.Run(string(tc.alg), func(t *testing.T) {
			cs, err := newCompactSigner(tc.alg, "kid1", tc.priv)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cs.sign(payload)
			if err != nil {
				t.Fatal(err)
			}
			js, err := jose.NewSigner(jose.SigningKey{Algorithm: tc.alg, Key: tc.priv},
				(&jose.SignerOptions{}).WithType(tokenType).WithHeader(jose.HeaderKey("kid"), "kid1"))
			if err != nil {
				t.Fatal(err)
			}
			obj, err := js.Sign(payload)
			if err != nil {
				t.Fatal(err)
			}
			want, err := obj.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			if g, w := strings.SplitN(got, ".", 2)[0], strings.SplitN(want, ".", 2)[0]; g != w {
				t.Errorf("protected header %s, go-jose writes %s", g, w)
			}
			if got != want {
				t.Errorf("token\n%s\ngo-jose's\n%s", got, want)
			}
			parsed, err := jose.ParseSignedCompact(got, []jose.SignatureAlgorithm{tc.alg})
			if err != nil {
				t.Fatal(err)
			}
			out, err := parsed.Verify(tc.pub)
			if err != nil {
				t.Fatalf("go-jose does not verify the token: %v", err)
			}
			if string(out) != string(payload) {
				t.Errorf("payload %s, want %s", out, payload)
			}
		})
	}
	if _, err := newCompactSigner(jose.RS256, "k", ed); err == nil {
		t.Error("an Ed25519 key was accepted for RS256")
	}
}

// TestMintedTokensVerify mints with each algorithm through Tokens and
// verifies the result, claims intact, as every other replica would.
// alterSignature flips one bit in the middle of a compact JWS's
// signature. Overwriting its last characters is not an alteration for
// sure: an Ed25519 signature's last byte is S's top byte, mostly zero
// bits, and the last character carries padding bits a lenient decoder
// drops, so "AA" is often what was already there.
func alterSignature(t *testing.T, compact string) string {
	t.Helper()
	dot := strings.LastIndexByte(compact, '.')
	sig, err := base64.RawURLEncoding.DecodeString(compact[dot+1:])
	if err != nil || len(sig) == 0 {
		t.Fatalf("signature of %q does not decode: %v", compact, err)
	}
	sig[len(sig)/2] ^= 0x01
	return compact[:dot+1] + base64.RawURLEncoding.EncodeToString(sig)
}

func TestMintedTokensVerify(t *testing.T) {
	ctx := context.Background()
	st, kr := openTestStore(t, "")
	clk := clocktest.New(0)
	for _, alg := range []string{AlgEdDSA, AlgRS256} {
		tk := &Tokens{Store: st, Keyring: kr, Alg: alg, Issuer: "http://sluice.test", Audience: "sluice", Lifetime: time.Hour, Now: clk.Now}
		if err := tk.Init(ctx); err != nil {
			t.Fatal(err)
		}
		raw, c, err := tk.Mint(Claims{Subject: "user:alice", ClientID: "c1", Scope: "appcon:manage", InstanceID: "i1", Role: RoleAdmin, KeyID: "k1", KeyEpoch: 2})
		if err != nil {
			t.Fatal(err)
		}
		// A fresh Tokens reads the keys from the store: nothing is
		// remembered from minting.
		other := &Tokens{Store: st, Keyring: kr, Alg: alg, Issuer: "http://sluice.test", Audience: "sluice", Lifetime: time.Hour, Now: clk.Now}
		if err := other.Load(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := other.Verify(ctx, raw)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if got != c {
			t.Errorf("%s: verified claims %+v, minted %+v", alg, got, c)
		}
		if _, err := other.Verify(ctx, alterSignature(t, raw)); err == nil {
			t.Errorf("%s: an altered signature verified", alg)
		}
	}
}
