package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

// Failed and unauthenticated calls count against their source address,
// never against the client id or instance they present: an attacker who
// knows a victim's client id cannot lock the victim out.
func TestFailedCallsDoNotSpendAVictimsQuota(t *testing.T) {
	e := newEnv(t, envOpts{perClient: iam.Limit{Requests: 5, Window: time.Minute}, perInstance: iam.Limit{Requests: 100, Window: time.Hour},
		perSource: iam.Limit{Requests: 3, Window: time.Minute}})
	victim := e.admin() // 1 of the client's 5
	c := e.creds
	var codes []int
	for i := 0; i < 10; i++ {
		codes = append(codes, (caller{e, "forged." + fmt.Sprint(i) + ".token", c.ClientID}).call("GET", "/api/v1/whoami", nil).code)
		codes = append(codes, e.exchange(c.ClientID, "slcs_"+strings.Repeat("x", 36), c.InstanceID, c.APIKey).code)
	}
	if codes[0] != 401 || codes[len(codes)-1] != 429 {
		t.Fatalf("forged calls: %v, want 401s, then 429 once the source is over its quota", codes)
	}
	// The victim's own quota is untouched: 4 calls left of 5.
	r := victim.call("GET", "/api/v1/whoami", nil)
	if r.code != 200 || !strings.Contains(r.header.Get("RateLimit"), `"client";r=3;`) {
		t.Fatalf("victim after the attack: %d RateLimit=%q %s", r.code, r.header.Get("RateLimit"), r.body)
	}
	// Once the source's window has passed, exchanges work again, and they
	// count against the client (authenticated traffic).
	e.clock.Add(time.Minute)
	if r := e.exchange(c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey); r.code != 200 || !strings.Contains(r.header.Get("RateLimit"), `"client";r=`) {
		t.Fatalf("exchange after the source window: %d %q %s", r.code, r.header.Get("RateLimit"), r.body)
	}
}

// 300 token requests with made-up client and instance ids leave one audit
// row per source and window with their count, not 300 rows under 300
// made-up instances.
func TestRefusalsOfUnknownClientsAreAggregated(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.creds
	const n = 300
	for i := 0; i < n; i++ {
		inst := fmt.Sprintf("made-up-%03d", i)
		if i%3 == 0 {
			inst = c.InstanceID // some name the real instance
		}
		if r := e.exchange(fmt.Sprintf("%032x", i), c.ClientSecret, inst, c.APIKey); r.code != 401 {
			t.Fatalf("made-up client %d: %d %s", i, r.code, r.body)
		}
	}
	ctx := context.Background()
	if err := e.svc.FlushRefusals(ctx, false); err != nil {
		t.Fatal(err)
	}
	count := func(instanceID string) []store.AuditEvent {
		evs, err := e.st.ListAuditEvents(ctx, store.AuditFilter{InstanceID: instanceID, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		var out []store.AuditEvent
		for _, ev := range evs {
			if ev.Action == "token.refuse" {
				out = append(out, ev)
			}
		}
		return out
	}
	if evs := count(c.InstanceID); len(evs) != 0 {
		t.Fatalf("refusals written before their window ended: %+v", evs)
	}
	e.clock.Add(time.Minute)
	if err := e.svc.FlushRefusals(ctx, false); err != nil {
		t.Fatal(err)
	}
	real, none := count(c.InstanceID), count("")
	if len(real) != 1 || !strings.Contains(real[0].Detail, "100 token requests") || real[0].Actor != "client:unknown" || real[0].Source == "" {
		t.Fatalf("refusals naming the real instance: %+v, want one row counting 100", real)
	}
	if len(none) != 1 || !strings.Contains(none[0].Detail, "200 token requests") {
		t.Fatalf("refusals naming made-up instances: %+v, want one row counting 200", none)
	}
	if evs := count("made-up-001"); len(evs) != 0 {
		t.Fatalf("a made-up instance got audit rows: %+v", evs)
	}
	// A known client's refusal is still its own row, at once.
	if r := e.exchange(c.ClientID, "slcs_"+strings.Repeat("y", 36), c.InstanceID, c.APIKey); r.code != 401 {
		t.Fatalf("wrong secret: %d", r.code)
	}
	if evs := count(c.InstanceID); len(evs) != 2 || !strings.Contains(evs[0].Detail, "wrong client secret") {
		t.Fatalf("a known client's refusal: %+v", evs)
	}
}
