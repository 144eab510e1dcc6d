package runtime

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/gateway"
)

// enforcementCase is the bench project's runtime behind one plan type.
type enforcementCase struct {
	name    string
	headers []string
	rt      *Runtime
}

// enforcementCases loads the bench project three times: open (none),
// behind a client-id plan (with the secret) and behind an oauth plan (a
// bearer token verified against the JWKS, cached after the first call).
func enforcementCases(b *testing.B) []enforcementCase {
	clk := clocktest.New(0)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: string(jose.EdDSA), Use: "sig"}}})
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	claims, _ := json.Marshal(map[string]any{"iss": "cp", "aud": "sluice", "sub": "app1", "client_id": "cid", "exp": clk.Now().Add(time.Hour).Unix(), "scope": "app"})
	jws, _ := signer.Sign(claims)
	token, _ := jws.CompactSerialize()
	const secret = "slas_benchsecretbenchsecretbenchsecret000"
	var out []enforcementCase
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
		out = append(out, enforcementCase{tc.name, tc.headers, loadedRuntimeWith(b, Options{Gateway: gw}, "../../bench/project")})
	}
	return out
}

// statusDiscard drops the answer but keeps its status, so a benchmark
// never times refusals by mistake.
type statusDiscard struct {
	h      http.Header
	status int
}

func (d *statusDiscard) Header() http.Header         { return d.h }
func (d *statusDiscard) Write(b []byte) (int, error) { return len(b), nil }
func (d *statusDiscard) WriteHeader(code int)        { d.status = code }

// serve sends one call of the case through the runtime's router.
func (c enforcementCase) serve(b *testing.B, w *statusDiscard) {
	req := httptest.NewRequest("POST", "/transform/acme", strings.NewReader(benchBody))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(c.headers); i += 2 {
		req.Header.Set(c.headers[i], c.headers[i+1])
	}
	clear(w.h)
	w.status = 0
	c.rt.router.ServeHTTP(w, req)
	if w.status != 0 && w.status != http.StatusOK {
		b.Fatalf("%s: %d", c.name, w.status)
	}
}

// BenchmarkEnforcement is the cost of the gateway on one flow: the bench
// project's transform served open (none), behind a client-id plan and
// behind an oauth plan, each a sub-benchmark. Compare the ns/op of the
// sub-benchmarks: throughput ratio = none / plan. On a busy machine the
// sub-benchmarks, which run one after the other, drift apart; the
// interleaved benchmark below measures the ratio within each round.
func BenchmarkEnforcement(b *testing.B) {
	for _, c := range enforcementCases(b) {
		b.Run(c.name, func(b *testing.B) {
			w := &statusDiscard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				c.serve(b, w)
			}
		})
	}
}

// BenchmarkEnforcementInterleaved measures the throughput ratio of each
// plan type to the open flow (the baseline) in the same rounds: each
// round (one op) times `perRound` calls of none, client-id and oauth, one
// case after the other in a rotating order, and takes none's time over
// each plan's. It reports the median ratio of the rounds and their
// lowest and highest (the run's noise): ≥ 0.9 is the target.
func BenchmarkEnforcementInterleaved(b *testing.B) {
	const perRound = 500
	cases := enforcementCases(b)
	w := &statusDiscard{h: http.Header{}}
	for _, c := range cases { // warm up: the oauth token is cached after its first check
		for i := 0; i < 50; i++ {
			c.serve(b, w)
		}
	}
	// The calls run on this goroutine's thread alone, so its CPU time
	// (which other processes on a busy machine do not inflate, unlike the
	// wall time) is measured too; the collector's own threads are not in it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	wall, cpu := map[string][]float64{}, map[string][]float64{}
	round := 0
	for b.Loop() {
		took, used := map[string]time.Duration{}, map[string]time.Duration{}
		for k := range cases {
			c := cases[(k+round)%len(cases)]
			start, cpu0 := time.Now(), threadCPU(b)
			for i := 0; i < perRound; i++ {
				c.serve(b, w)
			}
			took[c.name], used[c.name] = time.Since(start), threadCPU(b)-cpu0
		}
		round++
		for _, c := range cases[1:] {
			wall[c.name] = append(wall[c.name], float64(took["none"])/float64(took[c.name]))
			cpu[c.name] = append(cpu[c.name], float64(used["none"])/float64(used[c.name]))
		}
	}
	for _, c := range cases[1:] {
		for kind, rs := range map[string][]float64{"": wall[c.name], "cpu-": cpu[c.name]} {
			sort.Float64s(rs)
			b.ReportMetric(rs[len(rs)/2], kind+c.name+"/none-median")
			b.ReportMetric(rs[0], kind+c.name+"/none-min")
			b.ReportMetric(rs[len(rs)-1], kind+c.name+"/none-max")
		}
	}
}

// threadCPU is the CPU time of the calling thread (Linux RUSAGE_THREAD).
func threadCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
