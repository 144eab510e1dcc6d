package runtime

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/gateway"
)

// BenchmarkEnforcement is the cost of the gateway on one flow: the bench
// project's transform served open (none), behind a client-id plan (with
// the secret) and behind an oauth plan (a bearer token verified against
// the JWKS, cached after the first call), in one run. Compare the ns/op of
// the sub-benchmarks: throughput ratio = none / plan.
func BenchmarkEnforcement(b *testing.B) {
	clk := clocktest.New(0)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: string(jose.EdDSA), Use: "sig"}}})
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	claims, _ := json.Marshal(map[string]any{"iss": "cp", "aud": "sluice", "sub": "app1", "client_id": "cid", "exp": clk.Now().Add(time.Hour).Unix(), "scope": "app"})
	jws, _ := signer.Sign(claims)
	token, _ := jws.CompactSerialize()
	const secret = "slas_benchsecretbenchsecretbenchsecret000"
	for _, tc := range []struct {
		name, auth string
		headers    []string
	}{
		{"none", gateway.AuthNone, nil},
		{"client-id", gateway.AuthClientID, []string{"X-IBM-Client-Id", "cid", "X-IBM-Client-Secret", secret}},
		{"oauth", gateway.AuthOAuth, []string{"Authorization", "Bearer " + token}},
	} {
		gw := gateway.New(clk.Now)
		err := gw.Apply(gateway.State{Keys: jwks, Issuer: "cp", Audience: "sluice",
			APIs: []gateway.API{{ID: "a", Name: "bench", Flows: []string{"bench/transform"},
				Plans: []gateway.Plan{{ID: "p", Name: "p", Auth: tc.auth, RateLimit: gateway.Limit{Requests: 1 << 40, Window: gateway.Duration(time.Hour)}}}}},
			Apps:          []gateway.App{{ID: "app1", Name: "app", Enabled: true}},
			Credentials:   []gateway.Credential{{ClientID: "cid", SecretHash: gateway.HashSecret(secret), AppID: "app1"}},
			Subscriptions: []gateway.Subscription{{AppID: "app1", PlanID: "p", Active: true}},
		})
		if err != nil {
			b.Fatal(err)
		}
		rt := loadedRuntimeWith(b, Options{Gateway: gw}, "../../bench/project")
		b.Run(tc.name, func(b *testing.B) {
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("POST", "/transform/acme", strings.NewReader(benchBody))
				req.Header.Set("Content-Type", "application/json")
				for i := 0; i+1 < len(tc.headers); i += 2 {
					req.Header.Set(tc.headers[i], tc.headers[i+1])
				}
				clear(w.h)
				rt.router.ServeHTTP(w, req)
			}
		})
	}
}
