package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

const (
	shopSecret  = "slas_shopsecretshopsecretshopsecret000000"
	otherSecret = "slas_othersecretothersecretothersecr00000"
)

// world is a gateway with two APIs: orders (a client-id plan that needs
// the secret too, and an oauth plan, 2 calls per minute each) and stock (a
// client-id plan and an open plan). App shop is subscribed to both orders
// plans; app other to none; app off is disabled.
type world struct {
	t      *testing.T
	clk    *clocktest.Fake
	gw     *gateway.Gateway
	tokens *iam.Tokens
	state  gateway.State
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	clk := clocktest.New(0)
	st, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, _ := secret.NewMasterKey()
	kr, err := secret.OpenKeyring(ctx, st, mk)
	if err != nil {
		t.Fatal(err)
	}
	// The control plane's real token service mints the bearer tokens, so
	// the test proves the gateway verifies what Sluice issues.
	tokens := &iam.Tokens{Store: st, Keyring: kr, Issuer: "http://cp.test", Audience: "sluice", Lifetime: time.Hour, Now: clk.Now}
	if err := tokens.Init(ctx); err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(tokens.JWKS())
	w := &world{t: t, clk: clk, gw: gateway.New(clk.Now), tokens: tokens}
	minute := gateway.Limit{Requests: 2, Window: gateway.Duration(time.Minute)}
	w.state = gateway.State{
		Revision: 7,
		Keys:     jwks, Issuer: "http://cp.test", Audience: "sluice",
		APIs: []gateway.API{
			{ID: "api-orders", Name: "orders", Version: "1.0.0", BasePath: "/orders", Flows: []string{"shop/getOrder", "shop/putOrder"},
				Plans: []gateway.Plan{
					{ID: "p-key", Name: "gold", Auth: gateway.AuthClientID, ClientSecret: true, RateLimit: minute},
					{ID: "p-oauth", Name: "oauth", Auth: gateway.AuthOAuth, RateLimit: minute},
				}},
			{ID: "api-stock", Name: "stock", Version: "2.0.0", BasePath: "/stock", Flows: []string{"shop/stock"},
				Plans: []gateway.Plan{
					{ID: "p-stock", Name: "basic", Auth: gateway.AuthClientID},
					{ID: "p-open", Name: "open", Auth: gateway.AuthNone},
				}},
		},
		Apps: []gateway.App{
			{ID: "app-shop", Name: "shop", ConsumerOrgID: "co-acme", ConsumerOrgName: "acme", CatalogID: "cat-sb", CatalogName: "sandbox", Enabled: true},
			{ID: "app-other", Name: "other", Enabled: true},
			{ID: "app-off", Name: "off", Enabled: false},
		},
		Credentials: []gateway.Credential{
			{ClientID: "shop-id", SecretHash: gateway.HashSecret(shopSecret), AppID: "app-shop"},
			{ClientID: "lease-id", SecretHash: gateway.HashSecret(shopSecret), AppID: "app-shop", ExpiresAt: clk.Now().Add(10 * time.Minute)},
			{ClientID: "other-id", SecretHash: gateway.HashSecret(otherSecret), AppID: "app-other"},
			{ClientID: "off-id", SecretHash: gateway.HashSecret(otherSecret), AppID: "app-off"},
		},
		Subscriptions: []gateway.Subscription{
			{AppID: "app-shop", PlanID: "p-key", Active: true},
			{AppID: "app-shop", PlanID: "p-oauth", Active: true},
			{AppID: "app-shop", PlanID: "p-stock", Active: true},
			{AppID: "app-other", PlanID: "p-oauth", Active: false}, // awaiting approval
			{AppID: "app-off", PlanID: "p-key", Active: true},
		},
	}
	w.apply()
	return w
}

func (w *world) apply() {
	w.t.Helper()
	if err := w.gw.Apply(w.state); err != nil {
		w.t.Fatal(err)
	}
}

// token mints an app token as the apps service does (no role).
func (w *world) token(clientID, sub string) string {
	w.t.Helper()
	raw, _, err := w.tokens.Mint(iam.Claims{Subject: sub, ClientID: clientID, InstanceID: "i1", Scope: "app"})
	if err != nil {
		w.t.Fatal(err)
	}
	return raw
}

func req(headers ...string) *http.Request {
	r := httptest.NewRequest("GET", "/orders/1", nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

// outcome is a decision in one comparable string.
func outcome(c *gateway.Caller, ref *gateway.Refusal) string {
	switch {
	case ref != nil:
		return http.StatusText(ref.Status)
	case c != nil:
		return "pass " + c.AppName + " " + c.PlanName
	}
	return "pass anonymous"
}

func TestDecisions(t *testing.T) {
	w := newWorld(t)
	shopToken := w.token("shop-id", "app-shop")
	otherToken := w.token("other-id", "app-other")
	mgmt, _, err := w.tokens.Mint(iam.Claims{Subject: "admin", ClientID: "shop-id", InstanceID: "i1", Scope: "appcon:manage", Role: iam.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, flow string
		r          *http.Request
		want       string
	}{
		{"flow of no API", "shop/health", req(), "pass anonymous"},
		{"no credentials", "shop/getOrder", req(), "Unauthorized"},
		{"client id and secret", "shop/getOrder", req("X-IBM-Client-Id", "shop-id", "X-IBM-Client-Secret", shopSecret), "pass shop gold"},
		{"plan needs the secret", "shop/getOrder", req("X-IBM-Client-Id", "shop-id"), "Unauthorized"},
		{"wrong secret", "shop/getOrder", req("X-IBM-Client-Id", "shop-id", "X-IBM-Client-Secret", otherSecret), "Unauthorized"},
		{"unknown client id", "shop/getOrder", req("X-IBM-Client-Id", "nobody"), "Unauthorized"},
		{"bearer", "shop/putOrder", req("Authorization", "Bearer "+shopToken), "pass shop oauth"},
		{"bearer, lower-case scheme", "shop/putOrder", req("Authorization", "bearer "+shopToken), "pass shop oauth"},
		{"garbage bearer", "shop/getOrder", req("Authorization", "Bearer abc.def.ghi"), "Unauthorized"},
		{"management token", "shop/getOrder", req("Authorization", "Bearer "+mgmt), "Unauthorized"},
		{"subscription awaiting approval", "shop/getOrder", req("Authorization", "Bearer "+otherToken), "Forbidden"},
		{"not subscribed", "shop/getOrder", req("X-IBM-Client-Id", "other-id", "X-IBM-Client-Secret", otherSecret), "Forbidden"},
		{"disabled app", "shop/getOrder", req("X-IBM-Client-Id", "off-id", "X-IBM-Client-Secret", otherSecret), "Forbidden"},
		{"open plan, no credentials", "shop/stock", req(), "pass anonymous"},
		{"open plan, subscribed app", "shop/stock", req("X-IBM-Client-Id", "shop-id"), "pass shop basic"},
		{"open plan, unsubscribed app", "shop/stock", req("X-IBM-Client-Id", "other-id"), "pass anonymous"},
		{"open plan, bad credential", "shop/stock", req("X-IBM-Client-Id", "nobody"), "Unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := outcome(w.gw.Check(tc.flow, tc.r)); got != tc.want {
				t.Errorf("%s: %s, want %s", tc.flow, got, tc.want)
			}
		})
	}
}

func TestCallerAndRefusalShapes(t *testing.T) {
	w := newWorld(t)
	c, ref := w.gw.Check("shop/getOrder", req("X-IBM-Client-Id", "shop-id", "X-IBM-Client-Secret", shopSecret))
	if ref != nil {
		t.Fatal(ref)
	}
	v := c.Value()
	got, _ := json.Marshal(v)
	want := `{"api":{"id":"api-orders","name":"orders"},"auth":"client-id","catalog":{"id":"cat-sb","name":"sandbox"},"clientId":"shop-id",` +
		`"consumerOrg":{"id":"co-acme","name":"acme"},"id":"app-shop","name":"shop","plan":{"id":"p-key","name":"gold"}}`
	if string(got) != want {
		t.Errorf(".app = %s\nwant   %s", got, want)
	}

	_, ref = w.gw.Check("shop/getOrder", req())
	rec := httptest.NewRecorder()
	ref.Write(rec, "req-1")
	if rec.Code != 401 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("401 answer: %d %v", rec.Code, rec.Header())
	}
	if got := rec.Header().Get("WWW-Authenticate"); got != `X-IBM-Client-Id realm="orders", Bearer realm="orders"` {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body["error"] != "Internal error" || body["code"] != float64(401) || body["reason"] != "Unauthorized" || body["requestId"] != "req-1" ||
		!strings.Contains(body["message"].(string), "X-IBM-Client-Id") {
		t.Errorf("401 body = %s", rec.Body)
	}
	if !strings.HasPrefix(rec.Body.String(), `{"error":"Internal error","code":401,`) {
		t.Errorf("the body does not start as the control plane's errors do: %s", rec.Body)
	}
	_, ref = w.gw.Check("shop/getOrder", req("Authorization", "Bearer nope"))
	if got := ref.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("bad bearer challenge = %q (RFC 6750 §3.1 wants error=invalid_token)", got)
	}
}

func TestExpiryIsCheckedAtUse(t *testing.T) {
	w := newWorld(t)
	lease := req("X-IBM-Client-Id", "lease-id", "X-IBM-Client-Secret", shopSecret)
	if got := outcome(w.gw.Check("shop/getOrder", lease)); got != "pass shop gold" {
		t.Fatalf("live lease: %s", got)
	}
	// No new state arrives: the lease's expiry alone ends it.
	w.clk.Add(10*time.Minute - time.Millisecond)
	if got := outcome(w.gw.Check("shop/getOrder", lease)); got != "pass shop gold" {
		t.Errorf("a millisecond before expiry: %s", got)
	}
	w.clk.Add(time.Millisecond)
	_, ref := w.gw.Check("shop/getOrder", lease)
	if ref == nil || ref.Status != 401 || !strings.Contains(ref.Message, "expired") {
		t.Errorf("at expiry: %+v", ref)
	}
	// A bearer token past its exp fails even though its credential lives.
	tok := w.token("shop-id", "app-shop")
	w.clk.Add(time.Hour)
	if got := outcome(w.gw.Check("shop/putOrder", req("Authorization", "Bearer "+tok))); got != "Unauthorized" {
		t.Errorf("expired token: %s", got)
	}
}

func TestRateLimitPerAppAndPlan(t *testing.T) {
	w := newWorld(t)
	key := req("X-IBM-Client-Id", "shop-id", "X-IBM-Client-Secret", shopSecret)
	bearer := req("Authorization", "Bearer "+w.token("shop-id", "app-shop"))
	for i := 0; i < 2; i++ {
		if got := outcome(w.gw.Check("shop/getOrder", key)); got != "pass shop gold" {
			t.Fatalf("call %d: %s", i+1, got)
		}
	}
	w.clk.Add(15 * time.Second)
	_, ref := w.gw.Check("shop/putOrder", key) // the API's other flow shares the quota
	if ref == nil || ref.Status != 429 || ref.Header.Get("Retry-After") != "45" {
		t.Fatalf("third call: %+v, want 429 with Retry-After 45", ref)
	}
	if got := ref.Header.Get("RateLimit"); got != `"gold";r=0;t=45` {
		t.Errorf("RateLimit = %q", got)
	}
	// Another plan has its own quota.
	if got := outcome(w.gw.Check("shop/getOrder", bearer)); got != "pass shop oauth" {
		t.Errorf("the oauth plan: %s", got)
	}
	w.clk.Add(45 * time.Second)
	if got := outcome(w.gw.Check("shop/getOrder", key)); got != "pass shop gold" {
		t.Errorf("after the window: %s", got)
	}
	// A new state does not reset the counts.
	w.state.Revision++
	w.apply()
	w.gw.Check("shop/getOrder", key)
	if got := outcome(w.gw.Check("shop/getOrder", key)); got != "Too Many Requests" {
		t.Errorf("after Apply the quota was reset: %s", got)
	}
}

func TestChangesTakeEffectOnApply(t *testing.T) {
	w := newWorld(t)
	tok := w.token("shop-id", "app-shop")
	bearer := req("Authorization", "Bearer "+tok)
	key := req("X-IBM-Client-Id", "shop-id", "X-IBM-Client-Secret", shopSecret)
	if outcome(w.gw.Check("shop/putOrder", bearer)) != "pass shop oauth" {
		t.Fatal("bearer refused at start")
	}
	// Unsubscribe from the oauth plan: 403 for bearer, key still passes.
	w.state.Subscriptions = w.state.Subscriptions[:1]
	w.state.Subscriptions = append(w.state.Subscriptions, gateway.Subscription{AppID: "app-shop", PlanID: "p-stock", Active: true})
	w.apply()
	if got := outcome(w.gw.Check("shop/putOrder", bearer)); got != "Forbidden" {
		t.Errorf("bearer after unsubscribe: %s", got)
	}
	// Disable the app.
	w.state.Apps[0].Enabled = false
	w.apply()
	if got := outcome(w.gw.Check("shop/getOrder", key)); got != "Forbidden" {
		t.Errorf("disabled app: %s", got)
	}
	w.state.Apps[0].Enabled = true
	// Revoke the credential: its key and its tokens stop.
	w.state.Subscriptions = append(w.state.Subscriptions, gateway.Subscription{AppID: "app-shop", PlanID: "p-oauth", Active: true})
	w.state.Credentials = w.state.Credentials[1:]
	w.apply()
	if got := outcome(w.gw.Check("shop/getOrder", key)); got != "Unauthorized" {
		t.Errorf("revoked key: %s", got)
	}
	if got := outcome(w.gw.Check("shop/putOrder", bearer)); got != "Unauthorized" {
		t.Errorf("token of a revoked credential: %s", got)
	}
	if w.gw.Revision() != 7 {
		t.Errorf("revision = %d", w.gw.Revision())
	}
}

// TestRememberedPassesEndWithTheirState: the gateway builds one Caller
// per credential and plan and hands it out again while the state lasts.
// A remembered pass must not let a single call through once a state that
// revokes, unsubscribes, suspends or disables it has been applied, and the
// state after that starts with none remembered.
func TestRememberedPassesEndWithTheirState(t *testing.T) {
	for _, tc := range []struct {
		name             string
		change           func(s *gateway.State)
		keyWant, jwtWant string
	}{
		{"credential revoked", func(s *gateway.State) { s.Credentials = s.Credentials[1:] }, "Unauthorized", "Unauthorized"},
		{"secret rotated", func(s *gateway.State) {
			s.Credentials = append([]gateway.Credential{{ClientID: "shop-id", SecretHash: gateway.HashSecret(otherSecret), AppID: "app-shop"}}, s.Credentials[1:]...)
		}, "Unauthorized", "pass shop oauth"},
		{"unsubscribed", func(s *gateway.State) { s.Subscriptions = s.Subscriptions[2:] }, "Forbidden", "Forbidden"},
		{"subscriptions suspended", func(s *gateway.State) {
			s.Subscriptions = append([]gateway.Subscription{{AppID: "app-shop", PlanID: "p-key"}, {AppID: "app-shop", PlanID: "p-oauth"}}, s.Subscriptions[2:]...)
		}, "Forbidden", "Forbidden"},
		{"app disabled", func(s *gateway.State) {
			s.Apps = append([]gateway.App{}, s.Apps...)
			s.Apps[0].Enabled = false
		}, "Forbidden", "Forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			key := req("X-IBM-Client-Id", "shop-id", "X-IBM-Client-Secret", shopSecret)
			bearer := req("Authorization", "Bearer "+w.token("shop-id", "app-shop"))
			first := map[string]*gateway.Caller{}
			for name, r := range map[string]*http.Request{"key": key, "bearer": bearer} {
				c1, ref1 := w.gw.Check("shop/getOrder", r)
				c2, ref2 := w.gw.Check("shop/getOrder", r)
				if ref1 != nil || ref2 != nil || c1 != c2 {
					t.Fatalf("%s: two passes under one state: %v %v, %p %p, want one remembered Caller", name, ref1, ref2, c1, c2)
				}
				first[name] = c1
			}
			orig := w.state
			tc.change(&w.state)
			w.state.Revision++
			w.apply()
			w.clk.Add(time.Minute) // a fresh rate-limit window
			if got := outcome(w.gw.Check("shop/getOrder", key)); got != tc.keyWant {
				t.Errorf("client id after the change: %s, want %s", got, tc.keyWant)
			}
			if got := outcome(w.gw.Check("shop/getOrder", bearer)); got != tc.jwtWant {
				t.Errorf("bearer after the change: %s, want %s", got, tc.jwtWant)
			}
			// Undone, the old state's Callers are not handed out again.
			w.state = orig
			w.state.Revision += 2
			w.apply()
			w.clk.Add(time.Minute) // a fresh rate-limit window
			for name, r := range map[string]*http.Request{"key": key, "bearer": bearer} {
				c, ref := w.gw.Check("shop/getOrder", r)
				if ref != nil || c == first[name] {
					t.Errorf("%s after the change was undone: %v, remembered from the old state: %t", name, ref, c == first[name])
				}
			}
		})
	}
}

func TestInvalidStateChangesNothing(t *testing.T) {
	w := newWorld(t)
	key := req("X-IBM-Client-Id", "shop-id", "X-IBM-Client-Secret", shopSecret)
	for name, mutate := range map[string]func(*gateway.State){
		"unknown auth":     func(s *gateway.State) { s.APIs[0].Plans[0].Auth = "magic" },
		"bad hash":         func(s *gateway.State) { s.Credentials[0].SecretHash = "xyz" },
		"orphan":           func(s *gateway.State) { s.Credentials[0].AppID = "ghost" },
		"flow in two APIs": func(s *gateway.State) { s.APIs[1].Flows = []string{"shop/getOrder"} },
		"bad keys":         func(s *gateway.State) { s.Keys = json.RawMessage(`{"keys":7}`) },
		"bad limit":        func(s *gateway.State) { s.APIs[0].Plans[0].RateLimit = gateway.Limit{Requests: 3} },
	} {
		s := w.state
		s.APIs = append([]gateway.API{}, w.state.APIs...)
		s.APIs[0].Plans = append([]gateway.Plan{}, w.state.APIs[0].Plans...)
		s.Credentials = append([]gateway.Credential{}, w.state.Credentials...)
		s.Revision = 99
		s.Subscriptions = nil
		mutate(&s)
		if err := w.gw.Apply(s); err == nil {
			t.Errorf("%s: applied", name)
		}
		w.clk.Add(time.Minute) // a fresh rate-limit window for the check below
		if w.gw.Revision() != 7 || outcome(w.gw.Check("shop/getOrder", key)) != "pass shop gold" {
			t.Errorf("%s: a refused state changed what is enforced", name)
		}
	}
}

func TestForceFlowBasicAuth(t *testing.T) {
	w := newWorld(t)
	pw := secret.NewToken(gateway.BasicPasswordPrefix).Reveal()
	// A password without the format's checksum (as before the checksum
	// existed) is refused even when its hash is in the state.
	lookAlike := gateway.BasicPasswordPrefix + strings.Repeat("A", 36)
	w.state.BasicAuth = []gateway.BasicCredential{{Username: "flows", PasswordHash: gateway.HashSecret(pw)},
		{Username: "old", PasswordHash: gateway.HashSecret(lookAlike)}}
	w.apply()
	basic := func(u, p string) *http.Request { r := req(); r.SetBasicAuth(u, p); return r }
	if got := outcome(w.gw.Check("shop/health", basic("flows", pw))); got != "pass anonymous" {
		t.Errorf("good basic credentials: %s", got)
	}
	if _, ref := w.gw.Check("shop/health", basic("old", lookAlike)); ref == nil || ref.Status != 401 {
		t.Errorf("a password without its checksum passed: %+v", ref)
	}
	_, ref := w.gw.Check("shop/health", basic("flows", "wrong"))
	if ref == nil || ref.Status != 401 || !strings.HasPrefix(ref.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("wrong password: %+v", ref)
	}
	if _, ref := w.gw.Check("shop/health", req()); ref == nil || ref.Status != 401 {
		t.Errorf("no credentials: %+v", ref)
	}
	// A flow of an enforced API keeps its plans' credentials instead.
	if got := outcome(w.gw.Check("shop/getOrder", req("X-IBM-Client-Id", "shop-id", "X-IBM-Client-Secret", shopSecret))); got != "pass shop gold" {
		t.Errorf("API flow under basic auth: %s", got)
	}
}
