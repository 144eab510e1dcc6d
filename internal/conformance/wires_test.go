package conformance

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	apispec "github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// TestWiresFollowTheirDocuments drives every operation of the other tools'
// wires (Airbyte's applications, IBM Cloud IAM's token endpoint) on the real
// server to success and through their error answers, validating each
// answer against its own document, and checks that their tokens work on
// the main API with the bearer token alone.
func TestWiresFollowTheirDocuments(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) { testWires(t, storetest.DSN(t, kind)) })
	}
}

type application struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	CreatedAt    int64  `json:"createdAt"`
}

type iamToken struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Expiration   int64  `json:"expiration"`
}

// jwtClaims decodes a token's payload (the test trusts the server's
// signature; it checks what the answer says against what was signed).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func testWires(t *testing.T, dsn string) {
	srv := servertest.Start(t, servertest.Options{Store: dsn})
	h := newHarness(t, srv)
	ab := newHarnessFor(t, srv, apispec.AirbyteYAML())
	ib := newHarnessFor(t, srv, apispec.IBMIAMYAML())
	c := srv.Creds
	admin := h.login("exchange", c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)

	// ---- Airbyte: applications of the caller ----
	etl := decode[application](t, ab.do(call{label: "config create", method: "POST", path: "/api/v1/applications/create",
		header: bearer(admin.Token), body: map[string]string{"name": "etl"}, want: 200, conforms: true}))
	if etl.ID != etl.ClientID || !regexp.MustCompile(`^slcs_[0-9A-Za-z]{36}$`).MatchString(etl.ClientSecret) || etl.Name != "etl" || etl.CreatedAt < 1e9 || etl.CreatedAt > 1e11 {
		t.Errorf("created application = %+v; want id = clientId, an slcs_ secret and createdAt in epoch seconds", etl)
	}
	ab.do(call{label: "create a taken name", method: "POST", path: "/api/v1/applications/create", header: bearer(admin.Token),
		body: map[string]string{"name": "etl"}, want: 409, conforms: true})
	ab.do(call{label: "create with a bad name", method: "POST", path: "/api/v1/applications/create", header: bearer(admin.Token),
		body: map[string]string{"name": "my app!"}, want: 400, rejects: true})
	ab.do(call{label: "create with an unknown field", method: "POST", path: "/api/v1/applications/create", header: bearer(admin.Token),
		body: map[string]string{"name": "x", "owner": "y"}, want: 400, rejects: true})
	ab.do(call{label: "create without a token", method: "POST", path: "/api/v1/applications/create",
		body: map[string]string{"name": "x"}, want: 401, rejects: true})
	ab.do(call{label: "create with another client's id header", method: "POST", path: "/api/v1/applications/create",
		header: map[string]string{"Authorization": "Bearer " + admin.Token, "X-IBM-Client-Id": "0123456789abcdef0123456789abcdef"},
		body:   map[string]string{"name": "x"}, want: 401, conforms: true})

	// Config API token: JSON in, {"access_token"} out, nothing more.
	cfgTok := ab.do(call{label: "config token", method: "POST", path: "/api/v1/applications/token",
		body: map[string]string{"client_id": etl.ClientID, "client_secret": etl.ClientSecret}, want: 200, conforms: true})
	if !regexp.MustCompile(`^\{"access_token":"[^"]+"\}\n?$`).Match(cfgTok.body) {
		t.Errorf("config token answer %s is not {\"access_token\"} alone", cfgTok.body)
	}
	ab.do(call{label: "config token as a form", method: "POST", path: "/api/v1/applications/token",
		body: url.Values{"client_id": {etl.ClientID}, "client_secret": {etl.ClientSecret}}, want: 400, rejects: true})
	ab.do(call{label: "config token with a wrong secret", method: "POST", path: "/api/v1/applications/token",
		body: map[string]string{"client_id": etl.ClientID, "client_secret": "slcs_wrong"}, want: 401, conforms: true})
	ab.do(call{label: "config token with an unknown client id", method: "POST", path: "/api/v1/applications/token",
		body: map[string]string{"client_id": "00000000000000000000000000000000", "client_secret": etl.ClientSecret}, want: 401, conforms: true})
	ab.do(call{label: "config token with an instance credential", method: "POST", path: "/api/v1/applications/token",
		body: map[string]string{"client_id": c.ClientID, "client_secret": c.ClientSecret}, want: 403, conforms: true})
	ab.do(call{label: "config token without a secret", method: "POST", path: "/api/v1/applications/token",
		body: map[string]string{"client_id": etl.ClientID}, want: 400, rejects: true})

	// Public API token: form or JSON; token_type exactly Bearer, 15 min.
	pub := decode[struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}](t, ab.do(call{label: "public token, form", method: "POST", path: "/api/public/v1/applications/token",
		body: url.Values{"grant_type": {"client_credentials"}, "client_id": {etl.ClientID}, "client_secret": {etl.ClientSecret}}, want: 200, conforms: true}))
	if pub.TokenType != "Bearer" || pub.ExpiresIn != 900 {
		t.Errorf("public token: token_type %q, expires_in %d; want Bearer, 900", pub.TokenType, pub.ExpiresIn)
	}
	if cl := jwtClaims(t, pub.AccessToken); int64(cl["exp"].(float64)-cl["iat"].(float64)) != pub.ExpiresIn {
		t.Errorf("expires_in %d is not exp − iat of %v", pub.ExpiresIn, cl)
	}
	ab.do(call{label: "public token, JSON", method: "POST", path: "/api/public/v1/applications/token",
		body: map[string]string{"client_id": etl.ClientID, "client_secret": etl.ClientSecret}, want: 200, conforms: true})
	ab.do(call{label: "public token, wrong grant type", method: "POST", path: "/api/public/v1/applications/token",
		body: url.Values{"grant_type": {"password"}, "client_id": {etl.ClientID}, "client_secret": {etl.ClientSecret}}, want: 400, rejects: true})
	ab.do(call{label: "public token as text/plain", method: "POST", path: "/api/public/v1/applications/token",
		body: "client_id=x", contentType: "text/plain", want: 400, rejects: true})
	ab.do(call{label: "public token, unknown client id", method: "POST", path: "/api/public/v1/applications/token",
		body: url.Values{"grant_type": {"client_credentials"}, "client_id": {"nobody"}, "client_secret": {etl.ClientSecret}}, want: 401, conforms: true})

	// The application's token is the admin's role, with the bearer token alone.
	who := decode[map[string]any](t, h.do(call{label: "whoami with an application token alone", method: "GET", path: "/api/v1/whoami",
		header: bearer(pub.AccessToken), want: 200, conforms: true}))
	if who["name"] != "admin" || who["role"] != "admin" || who["clientId"] != etl.ClientID {
		t.Errorf("whoami with the application's token = %v", who)
	}
	h.do(call{label: "whoami with an application token and another client id", method: "GET", path: "/api/v1/whoami",
		header: map[string]string{"Authorization": "Bearer " + pub.AccessToken, "X-IBM-Client-Id": c.ClientID}, want: 401, conforms: true})

	list := decode[struct{ Applications []application }](t, ab.do(call{label: "config list", method: "POST", path: "/api/v1/applications/list",
		header: bearer(admin.Token), want: 200, conforms: true}))
	if len(list.Applications) != 1 || list.Applications[0].ClientID != etl.ClientID || list.Applications[0].ClientSecret != "" {
		t.Errorf("list = %+v; want etl, without its secret", list)
	}
	ab.do(call{label: "config list with {}", method: "POST", path: "/api/v1/applications/list", header: bearer(admin.Token),
		body: map[string]string{}, want: 200, conforms: true})
	ab.do(call{label: "config list with a field", method: "POST", path: "/api/v1/applications/list", header: bearer(admin.Token),
		body: map[string]string{"workspaceId": "w"}, want: 400, rejects: true})
	sdk := decode[application](t, ab.do(call{label: "public create", method: "POST", path: "/api/public/v1/applications",
		header: bearer(admin.Token), body: map[string]string{"name": "sdk"}, want: 200, conforms: true}))
	ab.do(call{label: "public list", method: "GET", path: "/api/public/v1/applications", header: bearer(admin.Token), want: 200, conforms: true})
	got := decode[application](t, ab.do(call{label: "public get", method: "GET", path: "/api/public/v1/applications/" + sdk.ID,
		header: bearer(admin.Token), want: 200, conforms: true}))
	if got.ClientSecret != "" || got.ClientID != sdk.ClientID {
		t.Errorf("get = %+v; want sdk without its secret", got)
	}
	ab.do(call{label: "public get of the instance credential", method: "GET", path: "/api/public/v1/applications/" + c.ClientID,
		header: bearer(admin.Token), want: 404, conforms: true})
	sdkTok := decode[struct {
		AccessToken string `json:"access_token"`
	}](t, ab.do(call{label: "token of sdk", method: "POST", path: "/api/public/v1/applications/token",
		body: map[string]string{"client_id": sdk.ClientID, "client_secret": sdk.ClientSecret}, want: 200}))
	del := decode[application](t, ab.do(call{label: "public delete", method: "DELETE", path: "/api/public/v1/applications/" + sdk.ID,
		header: bearer(admin.Token), want: 200, conforms: true}))
	if del.ClientID != sdk.ClientID || del.Name != "sdk" {
		t.Errorf("delete answered %+v, want the deleted sdk", del)
	}
	ab.do(call{label: "public delete again", method: "DELETE", path: "/api/public/v1/applications/" + sdk.ID,
		header: bearer(admin.Token), want: 404, conforms: true})
	h.do(call{label: "whoami with a deleted application's token", method: "GET", path: "/api/v1/whoami", header: bearer(sdkTok.AccessToken), want: 401, conforms: true})
	ab.do(call{label: "config delete without an id", method: "POST", path: "/api/v1/applications/delete", header: bearer(admin.Token),
		body: map[string]string{}, want: 400, rejects: true})
	ab.do(call{label: "config delete", method: "POST", path: "/api/v1/applications/delete", header: bearer(admin.Token),
		body: map[string]any{"applicationId": etl.ID, "includeTombstone": false}, want: 200, conforms: true})
	ab.do(call{label: "config delete again", method: "POST", path: "/api/v1/applications/delete", header: bearer(admin.Token),
		body: map[string]any{"applicationId": etl.ID}, want: 404, conforms: true})

	// ---- IBM Cloud IAM: an API key alone ----
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	const apikeyGrant = "urn:ibm:params:oauth:grant-type:apikey"
	first := decode[iamToken](t, ib.do(call{label: "apikey grant", method: "POST", path: "/identity/token",
		body: form("grant_type", apikeyGrant, "apikey", c.APIKey, "response_type", "cloud_iam"), want: 200, conforms: true}))
	cl := jwtClaims(t, first.AccessToken)
	if first.TokenType != "Bearer" || first.Expiration != int64(cl["exp"].(float64)) || first.ExpiresIn != first.Expiration-int64(cl["iat"].(float64)) || first.ExpiresIn != 3600 {
		t.Errorf("apikey grant answered %+v for claims %v; want Bearer, expiration = exp, expires_in = exp − iat = 3600", first, cl)
	}
	who = decode[map[string]any](t, h.do(call{label: "whoami with an IAM token alone", method: "GET", path: "/api/v1/whoami",
		header: bearer(first.AccessToken), want: 200, conforms: true}))
	if who["name"] != "admin" || who["clientId"] != "" || who["apiKeyId"] == "" {
		t.Errorf("whoami with the IAM token = %v; want admin, no client, the key", who)
	}
	h.do(call{label: "whoami with an IAM token and a client id header", method: "GET", path: "/api/v1/whoami",
		header: map[string]string{"Authorization": "Bearer " + first.AccessToken, "X-IBM-Client-Id": c.ClientID}, want: 401, conforms: true})
	second := decode[iamToken](t, ib.do(call{label: "refresh", method: "POST", path: "/identity/token",
		body: form("grant_type", "refresh_token", "refresh_token", first.RefreshToken), want: 200, conforms: true}))
	if second.RefreshToken == first.RefreshToken {
		t.Error("a refresh answered the same refresh token")
	}
	reuse := decode[map[string]any](t, ib.do(call{label: "refresh token reused", method: "POST", path: "/identity/token",
		body: form("grant_type", "refresh_token", "refresh_token", first.RefreshToken), want: 400, conforms: true}))
	if reuse["errorCode"] != "BXNIM0408E" {
		t.Errorf("reused refresh token: %v", reuse)
	}

	// With client authentication, the refresh token is that client's.
	withClient := decode[iamToken](t, ib.do(call{label: "apikey grant with a client", method: "POST", path: "/identity/token", basicRaw: []string{c.ClientID, c.ClientSecret},
		body: form("grant_type", apikeyGrant, "apikey", c.APIKey), want: 200, conforms: true}))
	if jwtClaims(t, withClient.AccessToken)["client_id"] != c.ClientID {
		t.Error("a token from a client-authenticated exchange does not name the client")
	}
	ib.do(call{label: "refresh a client's token without the client", method: "POST", path: "/identity/token",
		body: form("grant_type", "refresh_token", "refresh_token", withClient.RefreshToken), want: 400, conforms: true})
	ib.do(call{label: "refresh a client's token with a wrong secret", method: "POST", path: "/identity/token", basicRaw: []string{c.ClientID, "slcs_wrong"},
		body: form("grant_type", "refresh_token", "refresh_token", withClient.RefreshToken), want: 401, conforms: true})
	ib.do(call{label: "refresh a client's token with the client", method: "POST", path: "/identity/token", basicRaw: []string{c.ClientID, c.ClientSecret},
		body: form("grant_type", "refresh_token", "refresh_token", withClient.RefreshToken), want: 200, conforms: true})
	ib.do(call{label: "apikey grant with a wrong client secret", method: "POST", path: "/identity/token", basicRaw: []string{c.ClientID, "slcs_wrong"},
		body: form("grant_type", apikeyGrant, "apikey", c.APIKey), want: 400, conforms: true})

	// Bad input: each a 400 in IBM's shape.
	for _, bad := range []struct {
		label, code string
		body        any
		ct          string
	}{
		{"no grant type", "BXNIM0109E", form("apikey", c.APIKey), ""},
		{"an unsupported grant type", "BXNIM0104E", form("grant_type", "password", "apikey", c.APIKey), ""},
		{"no apikey", "BXNIM0109E", form("grant_type", apikeyGrant), ""},
		{"no refresh token", "BXNIM0109E", form("grant_type", "refresh_token"), ""},
		{"JSON instead of a form", "BXNIM0111E", map[string]string{"grant_type": apikeyGrant, "apikey": c.APIKey}, ""},
		{"an unknown API key", "BXNIM0415E", form("grant_type", apikeyGrant, "apikey", "slk_000000000000000000000000000000000000"), ""},
		{"a malformed refresh token", "BXNIM0408E", form("grant_type", "refresh_token", "refresh_token", "nonsense"), ""},
		{"an unknown parameter", "BXNIM0104E", form("grant_type", apikeyGrant, "apikey", c.APIKey, "password", "x"), ""},
		{"another response type", "BXNIM0104E", form("grant_type", apikeyGrant, "apikey", c.APIKey, "response_type", "delegated_refresh_token"), ""},
	} {
		e := decode[map[string]any](t, ib.do(call{label: "IAM with " + bad.label, method: "POST", path: "/identity/token", body: bad.body, want: 400}))
		if e["errorCode"] != bad.code {
			t.Errorf("IAM with %s: errorCode %v, want %s", bad.label, e["errorCode"], bad.code)
		}
	}

	// A locked key refuses its refresh tokens; unlocking it starts a new
	// token epoch, so a refresh token from before the lock stays refused
	// while one got after the unlock works; a deleted key takes its
	// refresh tokens with it.
	key := decode[object](t, h.do(call{method: "POST", path: "/api/v1/api-keys", as: admin, want: 201,
		body: map[string]any{"metadata": map[string]any{"name": "iam"}, "spec": map[string]any{"description": "IBM SDK"}}}))
	kt := decode[iamToken](t, ib.do(call{label: "apikey grant of a new key", method: "POST", path: "/identity/token",
		body: form("grant_type", apikeyGrant, "apikey", key.Key), want: 200}))
	h.do(call{method: "POST", path: "/api/v1/api-keys/" + key.Metadata.ID + "/lock", as: admin, want: 200})
	ib.do(call{label: "apikey grant of a locked key", method: "POST", path: "/identity/token", body: form("grant_type", apikeyGrant, "apikey", key.Key), want: 400})
	ib.do(call{label: "refresh with a locked key", method: "POST", path: "/identity/token", body: form("grant_type", "refresh_token", "refresh_token", kt.RefreshToken), want: 400})
	h.do(call{method: "POST", path: "/api/v1/api-keys/" + key.Metadata.ID + "/unlock", as: admin, want: 200})
	ib.do(call{label: "refresh from before the lock, after unlock", method: "POST", path: "/identity/token",
		body: form("grant_type", "refresh_token", "refresh_token", kt.RefreshToken), want: 400})
	kt1 := decode[iamToken](t, ib.do(call{label: "apikey grant after unlock", method: "POST", path: "/identity/token",
		body: form("grant_type", apikeyGrant, "apikey", key.Key), want: 200}))
	kt2 := decode[iamToken](t, ib.do(call{label: "refresh after unlock", method: "POST", path: "/identity/token",
		body: form("grant_type", "refresh_token", "refresh_token", kt1.RefreshToken), want: 200}))
	h.do(call{method: "DELETE", path: "/api/v1/api-keys/" + key.Metadata.ID, as: admin, want: 204})
	ib.do(call{label: "refresh with a deleted key", method: "POST", path: "/identity/token", body: form("grant_type", "refresh_token", "refresh_token", kt2.RefreshToken), want: 400})

	// Deleting a user deletes its applications: an application of carol's
	// stops getting tokens when carol goes.
	h.do(call{method: "POST", path: "/api/v1/users", as: admin, want: 201,
		body: map[string]any{"metadata": map[string]any{"name": "carol"}, "spec": map[string]any{"role": "viewer"}}})
	ck := decode[object](t, h.do(call{method: "POST", path: "/api/v1/api-keys", as: admin, want: 201,
		body: map[string]any{"metadata": map[string]any{"name": "carol"}, "spec": map[string]any{"owner": map[string]string{"kind": "user", "name": "carol"}}}}))
	carol := decode[iamToken](t, ib.do(call{label: "carol's apikey grant", method: "POST", path: "/identity/token",
		body: form("grant_type", apikeyGrant, "apikey", ck.Key), want: 200}))
	capp := decode[application](t, ab.do(call{label: "carol creates an application", method: "POST", path: "/api/public/v1/applications",
		header: bearer(carol.AccessToken), body: map[string]string{"name": "carol-app"}, want: 200}))
	ab.do(call{label: "admin does not see carol's application", method: "GET", path: "/api/public/v1/applications/" + capp.ID,
		header: bearer(admin.Token), want: 404})
	ab.do(call{label: "carol's application token", method: "POST", path: "/api/public/v1/applications/token",
		body: map[string]string{"client_id": capp.ClientID, "client_secret": capp.ClientSecret}, want: 200})
	h.do(call{method: "DELETE", path: "/api/v1/users/carol", as: admin, want: 204})
	ab.do(call{label: "token of a deleted user's application", method: "POST", path: "/api/public/v1/applications/token",
		body: map[string]string{"client_id": capp.ClientID, "client_secret": capp.ClientSecret}, want: 401})

	// Refusals are audited, bad input too. Those refused before their
	// credentials were checked are filed under the instance that the
	// client id, API key or refresh token they carry names; those naming
	// none are recorded without an instance, so no admin reads them here.
	all := decode[struct {
		AuditEvents []struct{ Action, Outcome, Detail, Actor string }
	}](t, h.do(call{method: "GET", path: "/api/v1/audit?limit=10000", as: admin, want: 200}))
	seen := map[string]bool{}
	for _, e := range all.AuditEvents {
		if e.Action == "token.refuse" {
			seen[e.Detail] = true
		}
		if e.Outcome != "success" && strings.HasPrefix(e.Action, "clientCredential.") {
			seen[e.Action+": "+e.Detail] = true
		}
	}
	for _, d := range []string{"wrong client secret", "instance credential used without an API key",
		"client_id and client_secret are both required",                                  // Airbyte, bad input with a known client id
		"grant_type password is not supported: use " + apikeyGrant + " or refresh_token", // IBM, bad input with a known API key
		"parameter password is not supported"} {
		if !seen[d] {
			t.Errorf("no token.refuse audit event with detail %q", d)
		}
	}
	for _, d := range []string{"clientCredential.delete: applicationId is missing"} {
		if !seen[d] {
			t.Errorf("no refusal audited as %q", d)
		}
	}
	unknownField := false
	for d := range seen {
		unknownField = unknownField || (strings.HasPrefix(d, "clientCredential.create: the body is not the JSON object") && strings.Contains(d, "owner"))
	}
	if !unknownField {
		t.Error("the create with an unknown field was not audited")
	}
	var usedBefore bool
	for d := range seen {
		usedBefore = usedBefore || strings.HasSuffix(d, "used before")
	}
	if !usedBefore {
		t.Error("the reused refresh token left no audit event")
	}

	ab.requireCoverage(400, 401, 403, 404, 409)
	ib.requireCoverage(400, 401)
}

// TestWiresCountAgainstRateLimits: token calls of the other tools' wires
// count per client as on /api/v1, and over the limit each answers 429 with
// Retry-After in its own error shape.
func TestWiresCountAgainstRateLimits(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--rate-limit-client", "3/1m", "--rate-limit-instance", "off"}})
	h := newHarness(t, srv)
	ab := newHarnessFor(t, srv, apispec.AirbyteYAML())
	ib := newHarnessFor(t, srv, apispec.IBMIAMYAML())
	c := srv.Creds
	admin := h.login("exchange", c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey) // 1st call of the instance client
	app := decode[application](t, ab.do(call{label: "create", method: "POST", path: "/api/public/v1/applications",
		header: bearer(admin.Token), body: map[string]string{"name": "busy"}, want: 200})) // 2nd
	tokenCall := call{label: "public token", method: "POST", path: "/api/public/v1/applications/token",
		body: map[string]string{"client_id": app.ClientID, "client_secret": app.ClientSecret}}
	for i := 0; i < 3; i++ {
		tokenCall.want = 200
		ab.do(tokenCall)
	}
	tokenCall.label, tokenCall.want = "public token over the limit", 429
	if ex := ab.do(tokenCall); ex.header.Get("Retry-After") == "" || ex.header.Get("RateLimit-Policy") == "" {
		t.Errorf("429 without Retry-After and RateLimit-Policy: %v", ex.header)
	}
	iamCall := call{label: "IAM with the instance client", method: "POST", path: "/identity/token", basicRaw: []string{c.ClientID, c.ClientSecret},
		body: url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {c.APIKey}}, want: 200} // 3rd
	ib.do(iamCall)
	iamCall.label, iamCall.want = "IAM over the limit", 429
	if e := decode[map[string]any](t, ib.do(iamCall)); e["errorCode"] != "BXNIM0429E" {
		t.Errorf("IAM over the limit answered %v", e)
	}
	// Without a client, the API-key exchange counts against no client.
	ib.do(call{label: "IAM without a client", method: "POST", path: "/identity/token",
		body: url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {c.APIKey}}, want: 200})
}

// TestFailedCallsOnEveryWireSpareTheVictim: failed token and bearer calls
// that present a victim's client id count against the caller's address,
// on every wire (/api/v1, API Connect's /api/token, Airbyte's and IBM
// IAM's token calls), never against the victim's client quota; once the
// address is over its own quota each wire answers 429 in its own shape.
func TestFailedCallsOnEveryWireSpareTheVictim(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--rate-limit-client", "3/1m", "--rate-limit-instance", "off",
		"--rate-limit-source", "12/1m"}})
	h := newHarness(t, srv)
	ap := newAPICHarness(t, srv)
	ab := newHarnessFor(t, srv, apispec.AirbyteYAML())
	ib := newHarnessFor(t, srv, apispec.IBMIAMYAML())
	c := srv.Creds
	wrong := "slcs_" + strings.Repeat("x", 36)
	attacks := []func(want int) *exchange{
		func(want int) *exchange {
			return h.do(call{label: "v1 exchange, wrong secret", method: "POST", path: "/api/v1/tokens",
				header: map[string]string{"X-IBM-Client-Id": c.ClientID, "X-IBM-Client-Secret": wrong, "X-IBM-Instance-Id": c.InstanceID},
				body:   map[string]string{"apiKey": c.APIKey}, want: want})
		},
		func(want int) *exchange {
			return ap.do(call{label: "apic token, wrong secret", method: "POST", path: "/api/token", contentType: "application/json",
				body: fmt.Sprintf(`{"api_key":%q,"grant_type":"api_key","client_id":%q,"client_secret":%q}`, c.APIKey, c.ClientID, wrong), want: want})
		},
		func(want int) *exchange {
			return ab.do(call{label: "airbyte token, wrong secret", method: "POST", path: "/api/public/v1/applications/token",
				body: map[string]string{"client_id": c.ClientID, "client_secret": wrong}, want: want})
		},
		func(want int) *exchange {
			return ib.do(call{label: "IAM token, wrong secret", method: "POST", path: "/identity/token", basicRaw: []string{c.ClientID, wrong},
				body: url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {c.APIKey}}, want: want})
		},
	}
	wantFail := []int{401, 401, 401, 400}
	for round := 0; round < 2; round++ { // 8 failures naming the victim's client
		for i, attack := range attacks {
			attack(wantFail[i])
		}
	}
	// The victim's client quota is whole: 3 token calls, then 429.
	for i := 0; i < 3; i++ {
		ap.apicToken(fmt.Sprintf("victim token %d of 3", i+1), infisicalToken(c))
	}
	ap.do(call{label: "victim's fourth token", method: "POST", path: "/api/token", body: infisicalToken(c), contentType: "application/json", want: 429, conforms: true})
	// 4 more failures use up the address's quota of 12; then every wire
	// answers 429 with Retry-After, in its own error shape.
	for i, attack := range attacks {
		attack(wantFail[i])
	}
	for i, attack := range attacks {
		if ex := attack(429); ex.header.Get("Retry-After") == "" {
			t.Errorf("attack %d over the source quota: no Retry-After: %v", i, ex.header)
		}
	}
}
