package iam

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
)

// FuzzVerifyToken feeds arbitrary strings to token verification, seeded
// with real tokens of both algorithms and their mangled forms. Verify must
// never panic, and whatever it accepts must carry exactly the claims of a
// token this service minted: no input forges or alters claims.
//
//	go test ./internal/iam -run '^$' -fuzz FuzzVerifyToken -fuzztime 1m
func FuzzVerifyToken(f *testing.F) {
	ctx := context.Background()
	st, kr := openTestStore(f, "")
	// A clock that never moves: tokens neither expire nor become valid
	// while the fuzzer runs.
	clk := clocktest.New(0)
	minted := map[string]Claims{}
	var all []*Tokens
	for _, alg := range []string{AlgEdDSA, AlgRS256} {
		tk := &Tokens{Store: st, Keyring: kr, Alg: alg, Issuer: "http://sluice.test", Audience: "sluice", Lifetime: time.Hour,
			Now: clk.Now}
		if err := tk.Init(ctx); err != nil {
			f.Fatal(err)
		}
		raw, c, err := tk.Mint(Claims{Subject: "user:alice", ClientID: "c1", Scope: "appcon:manage", InstanceID: "i1", Role: RoleAdmin})
		if err != nil {
			f.Fatal(err)
		}
		minted[raw] = c
		all = append(all, tk)
		parts := strings.Split(raw, ".")
		f.Add(raw)
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(parts[0] + ".." + parts[2])
		f.Add(`{"protected":"` + parts[0] + `","payload":"` + parts[1] + `","signature":"` + parts[2] + `"}`)
		f.Add(strings.ToUpper(raw[:1]) + raw[1:] + "=")
	}
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		for _, tk := range all {
			c, err := tk.Verify(ctx, raw)
			if err != nil {
				continue
			}
			want, ok := mintedClaims(minted, c)
			if !ok || c != want {
				t.Fatalf("accepted %q with claims %+v, which no minted token carries", raw, c)
			}
		}
	})
}

func mintedClaims(minted map[string]Claims, c Claims) (Claims, bool) {
	for _, m := range minted {
		if m.ID == c.ID {
			return m, true
		}
	}
	return Claims{}, false
}
