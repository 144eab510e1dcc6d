package iam

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/secret"
)

func TestSecretFormatAndChecksum(t *testing.T) {
	for _, prefix := range []string{APIKeyPrefix, ClientSecretPrefix, AppSecretPrefix, KeyRefreshTokenPrefix, "slfb_"} { // slfb_: flow basic passwords (package apis)
		v := newSecret(prefix).Reveal()
		if !wellFormed(v, prefix) || !SecretPattern.MatchString(v) {
			t.Fatalf("fresh %s secret %q is not well formed or does not match the published pattern", prefix, v)
		}
		// One changed character breaks the checksum.
		i := len(prefix) + 3
		c := byte('A')
		if v[i] == 'A' {
			c = 'B'
		}
		broken := v[:i] + string(c) + v[i+1:]
		if wellFormed(broken, prefix) {
			t.Fatalf("%q passes the checksum after a change", broken)
		}
		for _, bad := range []string{"", prefix, v + "x", strings.Replace(v, prefix, "xx_", 1), v[:len(v)-1] + "!"} {
			if wellFormed(bad, prefix) {
				t.Errorf("%q accepted", bad)
			}
		}
	}
	if a, b := newSecret(APIKeyPrefix).Reveal(), newSecret(APIKeyPrefix).Reveal(); a == b {
		t.Fatal("two secrets are equal")
	}
}

func TestPasswordHashing(t *testing.T) {
	h, err := HashPassword(secret.New("correct horse battery"))
	if err != nil || !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Fatalf("hash %q, %v", h, err)
	}
	if !VerifyPassword(secret.New("correct horse battery"), h) {
		t.Fatal("the right password does not verify")
	}
	for _, bad := range []string{"correct horse batterY", ""} {
		if VerifyPassword(secret.New(bad), h) {
			t.Fatalf("%q verifies", bad)
		}
	}
	if VerifyPassword(secret.New("x"), "$argon2id$garbage") {
		t.Fatal("a malformed hash verifies")
	}
	if h2, _ := HashPassword(secret.New("correct horse battery")); h2 == h {
		t.Fatal("two hashes of one password are equal (no salt?)")
	}
}

func TestRateLimiterWindows(t *testing.T) {
	clk := clocktest.New(0)
	rl := &RateLimiter{PerClient: Limit{Requests: 2, Window: 10 * time.Second}, PerInstance: Limit{Requests: 3, Window: time.Minute}, Now: clk.Now}
	ok, q := rl.Allow("c1", "i1")
	if !ok || q[0].Remaining != 1 || q[1].Remaining != 2 || q[0].Reset != 10 {
		t.Fatalf("first: %v %+v", ok, q)
	}
	rl.Allow("c1", "i1")
	ok, q = rl.Allow("c1", "i1")
	if ok || RetryAfter(q) != 10 {
		t.Fatalf("third within the window: %v retry %d", ok, RetryAfter(q))
	}
	// Another client of the same instance still has its own quota, until
	// the instance's is spent.
	if ok, _ := rl.Allow("c2", "i1"); !ok {
		t.Fatal("second client refused")
	}
	if ok, q := rl.Allow("c2", "i1"); ok || RetryAfter(q) != 60 {
		t.Fatalf("instance quota: %v %+v", ok, q)
	}
	clk.Add(10 * time.Second)
	if ok, _ := rl.Allow("c1", "i2"); !ok {
		t.Fatal("client refused after its window")
	}
	if got := PolicyHeader(q); got != `"client";q=2;w=10, "instance";q=3;w=60` {
		t.Fatalf("policy header %q", got)
	}
	// The state header in the draft's shape, as fmt would write it.
	var want []string
	for _, x := range q {
		want = append(want, fmt.Sprintf("%q;r=%d;t=%d", x.Policy, x.Remaining, x.Reset))
	}
	if got := StateHeader(q); got != strings.Join(want, ", ") || !strings.HasPrefix(got, `"client";r=`) {
		t.Fatalf("state header %q, want %q", got, strings.Join(want, ", "))
	}
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]Limit{"600/1m": {600, time.Minute}, "off": {}, "0": {}, "5/30s": {5, 30 * time.Second}} {
		if got, err := ParseLimit(in); err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"x", "10", "-1/1m", "10/0s", "10/1.5s", "10/forever"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) accepted", bad)
		}
	}
}
