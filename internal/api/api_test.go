package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sluice-dev/sluice/internal/api"
	"github.com/sluice-dev/sluice/internal/barstore"
	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/configuration"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/orchestrator/local"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/server"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// env is a control plane assembled in-process on a real SQLite store, so
// tests can drive its clock.
type env struct {
	t     testing.TB
	st    store.Store
	url   string
	clock *clocktest.Fake
	svc   *iam.Service
	creds iam.InitialCredentials
	logs  *bytes.Buffer
	// dataDir is the SQLite store's directory.
	dataDir string

	configs *configuration.Service
	// handler is the control plane's handler, for tests that serve a
	// request in-process.
	handler http.Handler
}

type envOpts struct {
	alg         string
	perClient   iam.Limit
	perInstance iam.Limit
	perSource   iam.Limit
	maxBAR      int64
	// maxValidations caps BAR validations at once (0: the default, 2).
	maxValidations int
	quotas         server.Quotas
	// storeKind is the store the env runs on (storetest.Kinds); "": SQLite.
	storeKind string
	// backend gives the control plane the local runtime backend (its
	// reconciler does not run, so nothing starts): logs and traces work.
	backend bool
	// obsLogger logs as sluice serve does (obs.NewLogger: JSON, each
	// line's request id from its context) instead of a bare JSON handler.
	obsLogger bool
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	ctx := context.Background()
	dsn := ""
	if o.storeKind != "" {
		dsn = storetest.DSN(t, o.storeKind)
	}
	dataDir := t.TempDir()
	st, err := store.Open(ctx, dsn, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, _ := secret.NewMasterKey()
	kr, err := secret.OpenKeyring(ctx, st, mk)
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(0)
	aud := iam.NewAuditor(st)
	t.Cleanup(aud.Close)
	srv := httptest.NewUnstartedServer(nil)
	url := "http://" + srv.Listener.Addr().String()
	tokens := &iam.Tokens{Store: st, Keyring: kr, Alg: o.alg, Issuer: url, Audience: "sluice", Lifetime: 12 * time.Hour, Now: clk.Now}
	if err := tokens.Init(ctx); err != nil {
		t.Fatal(err)
	}
	svc := &iam.Service{Store: st, Tokens: tokens, Audit: aud, Now: clk.Now}
	creds, err := svc.Bootstrap(ctx)
	if err != nil || creds == nil {
		t.Fatalf("bootstrap: %v", err)
	}
	logs := &bytes.Buffer{}
	runtimes := &orchestrator.Service{Store: st, IAM: svc, Now: clk.Now, MaxRuntimes: o.quotas.Runtimes, MaxReplicas: o.quotas.Replicas}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	if o.obsLogger {
		if log, err = obs.NewLogger(logs, "json", "info"); err != nil {
			t.Fatal(err)
		}
	}
	a := &api.API{Store: st, IAM: svc, Log: log, Now: clk.Now, PublicURL: url, Runtimes: runtimes,
		Configs: &configuration.Service{Store: st, Keyring: kr, IAM: svc, Now: clk.Now, InUse: runtimes.InUse, MaxArchiveInflated: o.quotas.ConfigArchive},
		BARs: &barstore.Service{Store: st, IAM: svc, TempDir: t.TempDir(), MaxSize: o.maxBAR, MaxValidations: o.maxValidations, Now: clk.Now, InUse: runtimes.InUse,
			MaxStorage: o.quotas.BARStorage},
	}
	if o.backend {
		b, err := local.New(local.Options{Dir: filepath.Join(t.TempDir(), "runtimes"), Log: a.Log, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		a.Reconciler = &orchestrator.Reconciler{Store: st, Configs: a.Configs, Backend: b, Log: a.Log, Now: clk.Now}
		a.Traces = &orchestrator.Traces{Store: st, IAM: svc, Reconciler: a.Reconciler, Now: clk.Now}
	}
	if o.perClient.Requests > 0 || o.perInstance.Requests > 0 || o.perSource.Requests > 0 {
		a.RateLimit = &iam.RateLimiter{PerClient: o.perClient, PerInstance: o.perInstance, PerSource: o.perSource, Now: clk.Now}
	}
	srv.Config.Handler = a.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, url: url, clock: clk, svc: svc, creds: *creds, logs: logs, dataDir: dataDir, configs: a.Configs, handler: srv.Config.Handler}
}

type resp struct {
	code   int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

func (e *env) do(req *http.Request) resp {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func (e *env) exchange(clientID, clientSecret, instance, apiKey string) resp {
	req, _ := http.NewRequest("POST", e.url+"/api/v1/tokens", strings.NewReader(fmt.Sprintf(`{"apiKey":%q}`, apiKey)))
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-ibm-client-id", clientID)
	req.Header.Set("X-IBM-CLIENT-SECRET", clientSecret)
	req.Header.Set("X-IBM-Instance-ID", instance)
	return e.do(req)
}

// caller is a token plus the client id to send with it.
type caller struct {
	e        *env
	token    string
	clientID string
}

func (e *env) login(clientID, clientSecret, apiKey string) caller {
	e.t.Helper()
	r := e.exchange(clientID, clientSecret, e.creds.InstanceID, apiKey)
	if r.code != 200 {
		e.t.Fatalf("exchange: %d %s", r.code, r.body)
	}
	var tok iam.TokenResponse
	r.json(e.t, &tok)
	return caller{e, tok.AccessToken, clientID}
}

func (e *env) admin() caller { return e.login(e.creds.ClientID, e.creds.ClientSecret, e.creds.APIKey) }

func (c caller) call(method, path string, body any) resp {
	c.e.t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.e.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("X-IBM-Client-Id", c.clientID)
	return c.e.do(req)
}

func obj(name string, spec map[string]any) map[string]any {
	return map[string]any{"metadata": map[string]string{"name": name}, "spec": spec}
}

// createKey makes an API key for owner (kind:name) and returns id and value.
func (c caller) createKey(name, ownerKind, ownerName string, extra map[string]any) (string, string) {
	c.e.t.Helper()
	spec := map[string]any{"owner": map[string]string{"kind": ownerKind, "name": ownerName}}
	for k, v := range extra {
		spec[k] = v
	}
	r := c.call("POST", "/api/v1/api-keys", obj(name, spec))
	if r.code != 201 {
		c.e.t.Fatalf("create key: %d %s", r.code, r.body)
	}
	var out struct {
		Metadata struct{ ID string }
		Key      string
	}
	r.json(c.e.t, &out)
	return out.Metadata.ID, out.Key
}

func claimsOf(t *testing.T, token string) map[string]any {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	json.Unmarshal(b, &c)
	return c
}

func TestTokenExchangeAnswerShape(t *testing.T) {
	e := newEnv(t, envOpts{})
	r := e.exchange(e.creds.ClientID, e.creds.ClientSecret, e.creds.InstanceID, e.creds.APIKey)
	if r.code != 200 {
		t.Fatalf("exchange: %d %s", r.code, r.body)
	}
	// Compact JSON in App Connect's field order, so tr/grep parsing works.
	shape := regexp.MustCompile(`^\{"access_token":"[A-Za-z0-9_.-]+","token_type":"bearer","scope":"appcon:manage","expires_in":43200\}\n?$`)
	if !shape.Match(r.body) {
		t.Fatalf("answer shape: %s", r.body)
	}
	var tok iam.TokenResponse
	r.json(t, &tok)
	c := claimsOf(t, tok.AccessToken)
	if exp, iat := c["exp"].(float64), c["iat"].(float64); int64(exp-iat) != tok.ExpiresIn {
		t.Fatalf("expires_in %d != exp-iat %v", tok.ExpiresIn, exp-iat)
	}
	for _, k := range []string{"iss", "aud", "sub", "client_id", "iat", "exp", "jti", "scope", "instance_id"} {
		if c[k] == nil || c[k] == "" {
			t.Errorf("claim %s missing", k)
		}
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[0])
	var h map[string]string
	json.Unmarshal(hdr, &h)
	if h["typ"] != "at+jwt" || h["alg"] != "EdDSA" || h["kid"] == "" {
		t.Fatalf("header %v", h)
	}
}

func TestTokenExchangeRefusalsSayNothing(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	lockedID, lockedKey := admin.createKey("locked", "user", "admin", nil)
	admin.call("POST", "/api/v1/api-keys/"+lockedID+"/lock", nil)
	expID, expKey := admin.createKey("expiring", "user", "admin", map[string]any{"expiresAt": e.clock.Now().Add(time.Hour).Format(time.RFC3339)})
	_ = expID
	e.clock.Add(2 * time.Hour)
	c := e.creds
	cases := map[string][4]string{
		"wrong secret":      {c.ClientID, "slcs_" + strings.Repeat("a", 36), c.InstanceID, c.APIKey},
		"unknown client":    {"0123456789abcdef0123456789abcdef", c.ClientSecret, c.InstanceID, c.APIKey},
		"wrong instance":    {c.ClientID, c.ClientSecret, "zzzzzzzzzz", c.APIKey},
		"missing instance":  {c.ClientID, c.ClientSecret, "", c.APIKey},
		"unknown key":       {c.ClientID, c.ClientSecret, c.InstanceID, "slk_" + strings.Repeat("b", 36)},
		"missing key":       {c.ClientID, c.ClientSecret, c.InstanceID, ""},
		"locked key":        {c.ClientID, c.ClientSecret, c.InstanceID, lockedKey},
		"expired key":       {c.ClientID, c.ClientSecret, c.InstanceID, expKey},
		"secret as api key": {c.ClientID, c.ClientSecret, c.InstanceID, c.ClientSecret},
	}
	var first string
	for name, a := range cases {
		r := e.exchange(a[0], a[1], a[2], a[3])
		if r.code != 401 {
			t.Errorf("%s: %d %s", name, r.code, r.body)
			continue
		}
		var body map[string]any
		r.json(t, &body)
		delete(body, "requestId")
		b, _ := json.Marshal(body)
		if first == "" {
			first = string(b)
		} else if string(b) != first {
			t.Errorf("%s: answer %s differs from %s (it must not hint which part was wrong)", name, b, first)
		}
	}
	// Every refusal is audited with the reason, for operators; the one
	// naming no existing client is counted into one row per source and
	// window (TestRefusalsOfUnknownClientsAreAggregated).
	e.clock.Add(time.Minute)
	if err := e.svc.FlushRefusals(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	r := admin.call("GET", "/api/v1/audit?limit=100", nil)
	if n := strings.Count(string(r.body), `"action":"token.refuse"`); n < len(cases) {
		t.Errorf("%d refusals audited, want %d", n, len(cases))
	}
}

// Locking or deleting what a token was minted from bites on the very next
// request; so do role changes.
func TestRevocationBitesAtOnce(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	if r := admin.call("PUT", "/api/v1/users/dev", obj("dev", map[string]any{"role": "developer"})); r.code != 201 {
		t.Fatalf("create user: %d %s", r.code, r.body)
	}
	keyID, key := admin.createKey("k1", "user", "dev", nil)
	dev := e.login(e.creds.ClientID, e.creds.ClientSecret, key)
	ok := func(want int, why string) {
		t.Helper()
		if r := dev.call("GET", "/api/v1/whoami", nil); r.code != want {
			t.Fatalf("%s: whoami = %d %s, want %d", why, r.code, r.body, want)
		}
	}
	ok(200, "fresh token")
	admin.call("POST", "/api/v1/api-keys/"+keyID+"/lock", nil)
	ok(401, "after lock")
	admin.call("POST", "/api/v1/api-keys/"+keyID+"/unlock", nil)
	// Unlocking does not bring back the tokens minted before the lock;
	// one minted after it (in the same second: the clock stands still) works.
	ok(401, "token minted before the lock, after unlock")
	dev = e.login(e.creds.ClientID, e.creds.ClientSecret, key)
	ok(200, "token minted after unlock")
	// Demotion to viewer: the same token loses write access at once.
	admin.call("PUT", "/api/v1/users/dev", obj("dev", map[string]any{"role": "viewer"}))
	var who map[string]string
	r := dev.call("GET", "/api/v1/whoami", nil)
	r.json(t, &who)
	if who["role"] != "viewer" {
		t.Fatalf("role after demotion = %q", who["role"])
	}
	if r := admin.call("DELETE", "/api/v1/api-keys/"+keyID, nil); r.code != 204 {
		t.Fatalf("delete key: %d", r.code)
	}
	ok(401, "after delete")

	// Deleting the client credential kills tokens minted for it.
	cr := admin.call("POST", "/api/v1/credentials", obj("second", map[string]any{"description": "rotation"}))
	var cred struct{ ClientID, ClientSecret string }
	cr.json(t, &cred)
	viaSecond := e.login(cred.ClientID, cred.ClientSecret, e.creds.APIKey)
	if r := viaSecond.call("GET", "/api/v1/whoami", nil); r.code != 200 {
		t.Fatalf("second credential: %d", r.code)
	}
	// The token only works with the client id it was minted for.
	wrongClient := caller{e, viaSecond.token, e.creds.ClientID}
	if r := wrongClient.call("GET", "/api/v1/whoami", nil); r.code != 401 {
		t.Fatalf("token with another client id: %d", r.code)
	}
	admin.call("DELETE", "/api/v1/credentials/second", nil)
	if r := viaSecond.call("GET", "/api/v1/whoami", nil); r.code != 401 {
		t.Fatalf("after credential delete: %d", r.code)
	}
	// And a token simply expires: exp is enforced with the clock.
	e.clock.Add(12*time.Hour + time.Second)
	if r := admin.call("GET", "/api/v1/whoami", nil); r.code != 401 {
		t.Fatalf("expired token: %d", r.code)
	}
}

func TestRateLimits(t *testing.T) {
	e := newEnv(t, envOpts{perClient: iam.Limit{Requests: 3, Window: time.Minute}, perInstance: iam.Limit{Requests: 100, Window: time.Hour}})
	admin := e.admin() // the token call counts: 1 of 3
	for i, want := range []string{`"client";r=1;t=60`, `"client";r=0;t=60`} {
		r := admin.call("GET", "/api/v1/whoami", nil)
		if r.code != 200 || !strings.Contains(r.header.Get("RateLimit"), want) {
			t.Fatalf("call %d: %d RateLimit=%q, want %q", i, r.code, r.header.Get("RateLimit"), want)
		}
		if p := r.header.Get("RateLimit-Policy"); p != `"client";q=3;w=60, "instance";q=100;w=3600` {
			t.Fatalf("RateLimit-Policy = %q", p)
		}
	}
	e.clock.Add(20 * time.Second)
	r := admin.call("GET", "/api/v1/whoami", nil)
	if r.code != 429 || r.header.Get("Retry-After") != "40" || !strings.Contains(string(r.body), `"code":429`) {
		t.Fatalf("over the limit: %d Retry-After=%q %s", r.code, r.header.Get("Retry-After"), r.body)
	}
	// Token calls are limited too.
	if r := e.exchange(e.creds.ClientID, e.creds.ClientSecret, e.creds.InstanceID, e.creds.APIKey); r.code != 429 {
		t.Fatalf("token call over the limit: %d", r.code)
	}
	e.clock.Add(40 * time.Second)
	if r := admin.call("GET", "/api/v1/whoami", nil); r.code != 200 {
		t.Fatalf("after the window: %d %s", r.code, r.body)
	}
}

func TestAlgorithmPinningAndKeyRotation(t *testing.T) {
	for _, alg := range []string{"EdDSA", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, envOpts{alg: alg})
			admin := e.admin()
			hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(admin.token, ".")[0])
			if !strings.Contains(string(hdr), `"alg":"`+alg+`"`) {
				t.Fatalf("header %s", hdr)
			}
			parts := strings.Split(admin.token, ".")
			var h map[string]any
			json.Unmarshal(hdr, &h)
			forge := func(header map[string]any, sig string) string {
				hb, _ := json.Marshal(header)
				return base64.RawURLEncoding.EncodeToString(hb) + "." + parts[1] + "." + sig
			}
			_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
			signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: otherKey},
				(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", h["kid"]))
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			js, _ := signer.Sign(payload)
			selfSigned, _ := js.CompactSerialize()
			bad := map[string]string{
				"alg none":           forge(map[string]any{"alg": "none", "typ": "at+jwt", "kid": h["kid"]}, ""),
				"alg HS256":          forge(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": h["kid"]}, parts[2]),
				"other alg, our kid": forge(map[string]any{"alg": otherAlg(alg), "typ": "at+jwt", "kid": h["kid"]}, parts[2]),
				"unknown kid":        forge(map[string]any{"alg": alg, "typ": "at+jwt", "kid": "nope"}, parts[2]),
				"wrong typ":          forge(map[string]any{"alg": alg, "typ": "JWT", "kid": h["kid"]}, parts[2]),
				"foreign key":        selfSigned,
				// Our own valid signature, in the JWS JSON serializations
				// (RFC 7515 §7.2): only the compact form is a bearer token.
				"flattened JSON": fmt.Sprintf(`{"protected":%q,"payload":%q,"signature":%q}`, parts[0], parts[1], parts[2]),
				"general JSON":   fmt.Sprintf(`{"payload":%q,"signatures":[{"protected":%q,"signature":%q}]}`, parts[1], parts[0], parts[2]),
			}
			for name, tok := range bad {
				if r := (caller{e, tok, e.creds.ClientID}).call("GET", "/api/v1/whoami", nil); r.code != 401 {
					t.Errorf("%s: %d", name, r.code)
				}
			}
			// Rotation: the old token keeps working and its key stays in
			// the JWKS until it can no longer have live tokens.
			if err := e.svc.Tokens.Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
			if r := admin.call("GET", "/api/v1/whoami", nil); r.code != 200 {
				t.Fatalf("old token after rotation: %d", r.code)
			}
			jwks := func() int {
				r := e.do(mustReq("GET", e.url+"/oauth/jwks", nil))
				var set struct{ Keys []map[string]any }
				r.json(t, &set)
				return len(set.Keys)
			}
			if n := jwks(); n != 2 {
				t.Fatalf("JWKS after rotation has %d keys, want 2", n)
			}
			newer := e.admin()
			if claimsOf(t, newer.token)["jti"] == nil || strings.Split(newer.token, ".")[0] == parts[0] {
				t.Fatalf("new tokens still use the old key header")
			}
			e.clock.Add(12*time.Hour + time.Minute)
			if n := jwks(); n != 1 {
				t.Fatalf("JWKS a lifetime after rotation has %d keys, want 1", n)
			}
		})
	}
}

func otherAlg(alg string) string {
	if alg == "EdDSA" {
		return "RS256"
	}
	return "EdDSA"
}

func mustReq(method, url string, body io.Reader) *http.Request {
	r, err := http.NewRequest(method, url, body)
	if err != nil {
		panic(err)
	}
	return r
}

func form(e *env, path string, vals url.Values, basicID, basicSecret string) resp {
	req := mustReq("POST", e.url+path, strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	return e.do(req)
}

func TestOAuth(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	var meta map[string]any
	e.do(mustReq("GET", e.url+"/.well-known/oauth-authorization-server", nil)).json(t, &meta)
	if meta["issuer"] != e.url || !strings.Contains(fmt.Sprint(meta["grant_types_supported"]), "client_credentials") {
		t.Fatalf("metadata %v", meta)
	}

	// An application: a credential owned by a service ID.
	admin.call("PUT", "/api/v1/service-ids/ci", obj("ci", map[string]any{"role": "developer"}))
	r := admin.call("POST", "/api/v1/credentials", obj("ci-app", map[string]any{"owner": map[string]string{"kind": "serviceId", "name": "ci"}}))
	var app struct{ ClientID, ClientSecret string }
	r.json(t, &app)

	cc := url.Values{"grant_type": {"client_credentials"}}
	for name, r := range map[string]resp{
		"basic": form(e, "/oauth/token", cc, app.ClientID, app.ClientSecret),
		"post":  form(e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {app.ClientID}, "client_secret": {app.ClientSecret}}, "", ""),
	} {
		if r.code != 200 || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: %d %s", name, r.code, r.body)
		}
		var tok iam.TokenResponse
		r.json(t, &tok)
		c := claimsOf(t, tok.AccessToken)
		if c["role"] != "developer" || c["client_id"] != app.ClientID || c["akid"] != nil {
			t.Fatalf("%s: claims %v", name, c)
		}
		var who map[string]string
		(caller{e, tok.AccessToken, app.ClientID}).call("GET", "/api/v1/whoami", nil).json(t, &who)
		if who["name"] != "ci" || who["kind"] != "serviceId" {
			t.Fatalf("%s: whoami %v", name, who)
		}
	}
	// The instance credential needs an API key.
	if r := form(e, "/oauth/token", cc, e.creds.ClientID, e.creds.ClientSecret); r.code != 400 || !strings.Contains(string(r.body), "unauthorized_client") {
		t.Fatalf("instance credential alone: %d %s", r.code, r.body)
	}
	if r := form(e, "/oauth/token", cc, app.ClientID, "slcs_"+strings.Repeat("x", 36)); r.code != 401 || !strings.Contains(string(r.body), "invalid_client") {
		t.Fatalf("wrong secret: %d %s", r.code, r.body)
	}
	if r := form(e, "/oauth/token", url.Values{"grant_type": {"password"}}, app.ClientID, app.ClientSecret); r.code != 400 || !strings.Contains(string(r.body), "unsupported_grant_type") {
		t.Fatalf("password grant: %d %s", r.code, r.body)
	}
	akr := form(e, "/oauth/token", url.Values{"grant_type": {iam.GrantTypeAPIKey}, "api_key": {e.creds.APIKey}}, e.creds.ClientID, e.creds.ClientSecret)
	if akr.code != 200 {
		t.Fatalf("api-key grant: %d %s", akr.code, akr.body)
	}
	var tok iam.TokenResponse
	akr.json(t, &tok)

	// Introspection needs client authentication.
	if r := form(e, "/oauth/introspect", url.Values{"token": {tok.AccessToken}}, "", ""); r.code != 401 {
		t.Fatalf("unauthenticated introspection: %d", r.code)
	}
	r = form(e, "/oauth/introspect", url.Values{"token": {tok.AccessToken}}, e.creds.ClientID, e.creds.ClientSecret)
	var intro map[string]any
	r.json(t, &intro)
	if intro["active"] != true || intro["client_id"] != e.creds.ClientID || intro["role"] != "admin" {
		t.Fatalf("introspection of a live token: %s", r.body)
	}
	// Revocation by another client of the instance is refused; by its own
	// client it bites at once.
	if r := form(e, "/oauth/revoke", url.Values{"token": {tok.AccessToken}}, app.ClientID, app.ClientSecret); r.code != 400 {
		t.Fatalf("revocation by another client: %d %s", r.code, r.body)
	}
	if r := form(e, "/oauth/revoke", url.Values{"token": {tok.AccessToken}}, e.creds.ClientID, e.creds.ClientSecret); r.code != 200 {
		t.Fatalf("revocation: %d %s", r.code, r.body)
	}
	if r := form(e, "/oauth/revoke", url.Values{"token": {"garbage"}}, e.creds.ClientID, e.creds.ClientSecret); r.code != 200 {
		t.Fatalf("revoking garbage must answer 200 (RFC 7009 §2.2): %d", r.code)
	}
	r = form(e, "/oauth/introspect", url.Values{"token": {tok.AccessToken}}, e.creds.ClientID, e.creds.ClientSecret)
	if strings.TrimSpace(string(r.body)) != `{"active":false}` {
		t.Fatalf("introspection of a revoked token: %s", r.body)
	}
	if r := (caller{e, tok.AccessToken, e.creds.ClientID}).call("GET", "/api/v1/whoami", nil); r.code != 401 {
		t.Fatalf("revoked token still works: %d", r.code)
	}
	if r := admin.call("GET", "/api/v1/whoami", nil); r.code != 200 {
		t.Fatalf("revocation hit another token: %d", r.code)
	}
}

// Bad input gets a 4xx that names the problem, and changes nothing.
func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	before := admin.call("GET", "/api/v1/service-ids", nil).body
	long := strings.Repeat("a", 33)
	cases := []struct {
		method, path string
		body         any
		ctype        string
		want         int
		says         string
	}{
		{"POST", "/api/v1/service-ids", `{"metadata":`, "", 400, "not valid JSON"},
		{"POST", "/api/v1/service-ids", `{"metadata":{"name":"x"},"spec":{"role":"admin"},"extra":1}`, "", 400, `unknown field \"extra\"`},
		{"POST", "/api/v1/service-ids", `{"metadata":{"name":"x"},"spec":{"role":7}}`, "", 400, "spec.role must be a string"},
		{"POST", "/api/v1/service-ids", ``, "", 400, "empty"},
		{"POST", "/api/v1/service-ids", `{"metadata":{"name":"x"},"spec":{"role":"admin"}}{}`, "", 400, "more than one JSON value"},
		{"POST", "/api/v1/service-ids", `{"metadata":{"name":"x"},"spec":{"role":"admin"}}`, "text/plain", 415, "not JSON"},
		{"POST", "/api/v1/service-ids", `{"metadata":{"name":"` + strings.Repeat("x", 2<<20) + `"}}`, "", 413, "larger than"},
		{"POST", "/api/v1/service-ids", obj(long, map[string]any{"role": "admin"}), "", 400, "33 characters long"},
		{"POST", "/api/v1/service-ids", obj("a b", map[string]any{"role": "admin"}), "", 400, "not allowed"},
		{"POST", "/api/v1/service-ids", obj("x", map[string]any{"role": "root"}), "", 400, "not one of admin"},
		{"PUT", "/api/v1/service-ids/x", obj("y", map[string]any{"role": "admin"}), "", 400, "does not match"},
		{"POST", "/api/v1/api-keys", obj("k", map[string]any{"expiresAt": "tomorrow"}), "", 400, "RFC 3339"},
		{"POST", "/api/v1/api-keys", obj("k", map[string]any{"expiresAt": "2020-01-01T00:00:00Z"}), "", 400, "not in the future"},
		{"POST", "/api/v1/api-keys", obj("k", map[string]any{"owner": map[string]string{"kind": "serviceId", "name": "ghost"}}), "", 404, "not found"},
		{"GET", "/api/v1/audit?since=yesterday", nil, "", 400, "RFC 3339"},
		{"GET", "/api/v1/audit?limit=0", nil, "", 400, "limit"},
	}
	for _, c := range cases {
		var rd io.Reader
		switch b := c.body.(type) {
		case string:
			rd = strings.NewReader(b)
		case nil:
		default:
			j, _ := json.Marshal(b)
			rd = bytes.NewReader(j)
		}
		req := mustReq(c.method, e.url+c.path, rd)
		ct := c.ctype
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+admin.token)
		req.Header.Set("X-IBM-Client-Id", admin.clientID)
		r := e.do(req)
		if r.code != c.want || !strings.Contains(string(r.body), c.says) || !strings.Contains(string(r.body), fmt.Sprintf(`"code":%d`, c.want)) {
			t.Errorf("%s %s %.60v: %d %s; want %d saying %q", c.method, c.path, c.body, r.code, r.body, c.want, c.says)
		}
	}
	if after := admin.call("GET", "/api/v1/service-ids", nil).body; !bytes.Equal(before, after) {
		t.Fatalf("bad input changed the service IDs: %s -> %s", before, after)
	}
	if r := admin.call("GET", "/api/v1/api-keys", nil); strings.Count(string(r.body), `"id":"ak-`) != 1 {
		t.Fatalf("bad input created API keys: %s", r.body)
	}
}

func TestRolesAndOwnKeys(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	admin.call("PUT", "/api/v1/users/viv", obj("viv", map[string]any{"role": "viewer"}))
	_, vivKey := admin.createKey("viv-key", "user", "viv", nil)
	viewer := e.login(e.creds.ClientID, e.creds.ClientSecret, vivKey)
	for _, c := range []struct{ method, path string }{
		{"PUT", "/api/v1/users/x"}, {"GET", "/api/v1/users"}, {"GET", "/api/v1/credentials"}, {"POST", "/api/v1/credentials"}, {"GET", "/api/v1/audit"},
	} {
		if r := viewer.call(c.method, c.path, obj("x", map[string]any{"role": "admin"})); r.code != 403 {
			t.Errorf("viewer %s %s: %d %s", c.method, c.path, r.code, r.body)
		}
	}
	// A viewer manages its own keys, and cannot see or touch others'.
	r := viewer.call("POST", "/api/v1/api-keys", obj("mine", nil))
	if r.code != 201 {
		t.Fatalf("viewer creates own key: %d %s", r.code, r.body)
	}
	if r := viewer.call("POST", "/api/v1/api-keys", obj("theirs", map[string]any{"owner": map[string]string{"kind": "user", "name": "admin"}})); r.code != 403 {
		t.Fatalf("viewer creates a key for admin: %d", r.code)
	}
	r = viewer.call("GET", "/api/v1/api-keys", nil)
	if strings.Contains(string(r.body), `"name":"admin"`) || strings.Count(string(r.body), `"id":"ak-`) != 2 {
		t.Fatalf("viewer's key list: %s", r.body)
	}
	var all struct {
		APIKeys []struct{ Metadata struct{ ID, Name string } }
	}
	admin.call("GET", "/api/v1/api-keys", nil).json(t, &all)
	for _, k := range all.APIKeys {
		if k.Metadata.Name == "initial" {
			if r := viewer.call("DELETE", "/api/v1/api-keys/"+k.Metadata.ID, nil); r.code != 404 {
				t.Fatalf("viewer deletes admin's key: %d", r.code)
			}
		}
	}
	// Refused mutations are audited as denied.
	r = admin.call("GET", "/api/v1/audit?actor=user:viv", nil)
	if !strings.Contains(string(r.body), `"outcome":"denied"`) {
		t.Fatalf("denied attempts not in the audit: %s", r.body)
	}
}

// The last admin of an instance cannot demote themselves (nor delete
// themselves); with another admin they can step down.
func TestLastAdminCannotStepDown(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	demote := obj("admin", map[string]any{"role": "developer"})
	if r := admin.call("PUT", "/api/v1/users/admin", demote); r.code != 409 || !strings.Contains(string(r.body), "last admin") {
		t.Fatalf("last admin demotes themselves: %d %s", r.code, r.body)
	}
	if r := admin.call("DELETE", "/api/v1/users/admin", nil); r.code != 400 {
		t.Fatalf("admin deletes themselves: %d %s", r.code, r.body)
	}
	var who map[string]string
	admin.call("GET", "/api/v1/whoami", nil).json(t, &who)
	if who["role"] != "admin" {
		t.Fatalf("the refused demotion changed the role: %v", who)
	}
	audit := admin.call("GET", "/api/v1/audit?limit=5", nil)
	if !strings.Contains(string(audit.body), `"action":"user.update","object":"user/admin","outcome":"failure"`) {
		t.Errorf("the refusal is not audited: %s", audit.body)
	}
	if r := admin.call("PUT", "/api/v1/service-ids/ops", obj("ops", map[string]any{"role": "admin"})); r.code != 201 {
		t.Fatalf("second admin: %d %s", r.code, r.body)
	}
	if r := admin.call("PUT", "/api/v1/users/admin", demote); r.code != 200 {
		t.Fatalf("stepping down with another admin: %d %s", r.code, r.body)
	}
}
