package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	apispec "github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// publicURL is where the API Connect tests' server says it is reached; url
// fields must point there, not at the listen address.
const publicURL = "https://sluice.example.test"

func newAPICHarness(t *testing.T, srv *servertest.Server) *harness {
	doc, router := loadDocFrom(t, apispec.APIC(), srv.URL)
	return &harness{t: t, srv: srv, doc: doc, router: router, http: &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, apic: true}
}

// TestAPICRoutesAreDocumented holds internal/apic's route table and
// api/apic.yaml to each other.
func TestAPICRoutesAreDocumented(t *testing.T) {
	doc, _ := loadDocFrom(t, apispec.APIC(), "http://127.0.0.1:1")
	documented := map[string]bool{}
	for _, op := range operations(doc) {
		m, p, _ := strings.Cut(op, " ")
		documented[normalise(m, p)] = true
	}
	routed := map[string]bool{}
	for _, r := range routeTableOf(t, "apic", "apic.go") {
		method, path, _ := strings.Cut(r, " ")
		key := normalise(method, path)
		routed[key] = true
		if !documented[key] {
			t.Errorf("route %q is not in api/apic.yaml", r)
		}
	}
	for op := range documented {
		if !routed[op] {
			t.Errorf("api/apic.yaml documents %s, which internal/apic does not route", op)
		}
	}
}

type apicObject struct {
	Type           string `json:"type"`
	ID             string `json:"id"`
	Name           string `json:"name"`
	Title          string `json:"title"`
	ClientID       string `json:"client_id"`
	ClientSecret   string `json:"client_secret"`
	URL            string `json:"url"`
	ConsumerOrgURL string `json:"consumer_org_url"`
}

type apicList struct {
	TotalResults int          `json:"total_results"`
	Results      []apicObject `json:"results"`
}

// infisicalToken is Infisical's token call, byte for byte as
// wire-clients.md §1 records it (member order included).
func infisicalToken(c iam.InitialCredentials) string {
	return fmt.Sprintf(`{"api_key":%q,"grant_type":"api_key","client_id":%q,"client_secret":%q}`, c.APIKey, c.ClientID, c.ClientSecret)
}

// bearer is the headers Infisical sends on its GETs and DELETEs.
func bearer(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok, "Accept": "application/json"}
}

func (h *harness) apicToken(label, body string) string {
	h.t.Helper()
	ex := h.do(call{label: label, method: "POST", path: "/api/token", body: body, contentType: "application/json", want: 200, conforms: true})
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(ex.body, &tok); err != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
		h.t.Fatalf("%s: token answer %s", label, ex.body)
	}
	return tok.AccessToken
}

func TestAPICFollowsTheDocument(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) { testAPIC(t, storetest.DSN(t, kind)) })
	}
}

func testAPIC(t *testing.T, dsn string) {
	srv := servertest.Start(t, servertest.Options{Store: dsn, Args: []string{"--public-url", publicURL}})
	h := newAPICHarness(t, srv)
	c := srv.Creds
	org := c.InstanceID
	tok := h.apicToken("setup token", infisicalToken(c))
	// Set-up: the scripts' calls, a consumer org and an app.
	corg := decode[apicObject](t, h.do(call{label: "create a consumer org", method: "POST", path: "/api/catalogs/" + org + "/sandbox/consumer-orgs",
		header: bearer(tok), body: map[string]string{"title": "ACME Corp"}, want: 201, conforms: true}))
	app := decode[apicObject](t, h.do(call{label: "create an app", method: "POST", path: "/api/consumer-orgs/" + org + "/sandbox/" + corg.Name + "/apps",
		header: bearer(tok), body: map[string]string{"name": "shop", "title": "Shop"}, want: 201, conforms: true}))
	if app.URL != publicURL+"/api/apps/"+org+"/sandbox-"+org+"/"+corg.ID+"/"+app.ID {
		t.Errorf("app url %q does not honour --public-url or is not built of ids", app.URL)
	}

	// ---- Infisical's provider sequence (wire-clients.md §1): a fresh token before each operation ----
	// validateConnection
	h.apicToken("validate: token", infisicalToken(c))
	// the UI: orgs, catalogs, apps — by id (new renderer) and by name (old form)
	orgs := decode[apicList](t, h.do(call{label: "list orgs", method: "GET", path: "/api/orgs?limit=100", header: bearer(h.apicToken("orgs: token", infisicalToken(c))), want: 200, conforms: true}))
	if orgs.TotalResults != 1 || len(orgs.Results) != 1 || orgs.Results[0].ID != org {
		t.Fatalf("orgs = %+v", orgs)
	}
	o := orgs.Results[0]
	var catalog apicObject
	for _, seg := range []string{o.ID, o.Name} {
		cats := decode[apicList](t, h.do(call{label: "list catalogs of " + seg, method: "GET", path: "/api/orgs/" + seg + "/catalogs?limit=100",
			header: bearer(h.apicToken("catalogs: token", infisicalToken(c))), want: 200, conforms: true}))
		if len(cats.Results) != 1 || cats.Results[0].Name != "sandbox" {
			t.Fatalf("catalogs of %s = %+v", seg, cats)
		}
		catalog = cats.Results[0]
	}
	var consumerOrgID string
	for _, segs := range [][2]string{{o.ID, catalog.ID}, {o.Name, catalog.Name}} {
		as := decode[apicList](t, h.do(call{label: "list apps of " + segs[1], method: "GET", path: "/api/catalogs/" + segs[0] + "/" + segs[1] + "/apps?limit=100",
			header: bearer(h.apicToken("apps: token", infisicalToken(c))), want: 200, conforms: true}))
		if len(as.Results) != 1 || as.Results[0].ID != app.ID || as.Results[0].ConsumerOrgURL == "" {
			t.Fatalf("apps = %+v", as)
		}
		u, err := url.Parse(as.Results[0].ConsumerOrgURL)
		if err != nil || !strings.HasPrefix(as.Results[0].ConsumerOrgURL, publicURL+"/api/consumer-orgs/") {
			t.Fatalf("consumer_org_url %q", as.Results[0].ConsumerOrgURL)
		}
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		consumerOrgID = parts[len(parts)-1]
	}
	if consumerOrgID != corg.ID {
		t.Fatalf("the last segment of consumer_org_url is %q, want the consumer org's id %q", consumerOrgID, corg.ID)
	}
	// create (lease): only a title; then revoke by the returned id
	credsPath := "/api/apps/" + o.ID + "/" + catalog.ID + "/" + consumerOrgID + "/" + app.ID + "/credentials"
	created := decode[apicObject](t, h.do(call{label: "create a credential with only a title", method: "POST", path: credsPath,
		header: map[string]string{"Authorization": "Bearer " + h.apicToken("create: token", infisicalToken(c)), "Accept": "application/json"},
		body:   `{"title":"infisical-1764583200000"}`, contentType: "application/json", want: 201, conforms: true}))
	if created.ID == "" || created.ClientID == "" || !strings.HasPrefix(created.ClientSecret, "slas_") || created.Name != "infisical-1764583200000" {
		t.Fatalf("created credential = %+v", created)
	}
	h.do(call{label: "revoke by the returned id", method: "DELETE", path: credsPath + "/" + created.ID,
		header: bearer(h.apicToken("revoke: token", infisicalToken(c))), want: 204, conforms: true})

	// ---- the rest of the surface ----
	h.do(call{method: "GET", path: "/api/orgs/" + org, header: bearer(tok), want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/orgs/" + org + "/catalogs/sandbox", header: bearer(tok), want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/catalogs/" + org + "/sandbox", header: bearer(tok), want: 200, conforms: true})
	// limit and offset cut the store's ordered list; total_results counts all of it.
	for _, title := range []string{"Beta", "Gamma"} {
		h.do(call{label: "create consumer org " + title, method: "POST", path: "/api/catalogs/" + org + "/sandbox/consumer-orgs",
			header: bearer(tok), body: map[string]string{"title": title}, want: 201, conforms: true})
	}
	whole := decode[apicList](t, h.do(call{label: "every consumer org", method: "GET", path: "/api/catalogs/" + org + "/sandbox/consumer-orgs", header: bearer(tok), want: 200, conforms: true}))
	second := decode[apicList](t, h.do(call{label: "the second consumer org", method: "GET", path: "/api/catalogs/" + org + "/sandbox/consumer-orgs?limit=1&offset=1", header: bearer(tok), want: 200, conforms: true}))
	past := decode[apicList](t, h.do(call{label: "past the last consumer org", method: "GET", path: "/api/catalogs/" + org + "/sandbox/consumer-orgs?offset=5", header: bearer(tok), want: 200, conforms: true}))
	if whole.TotalResults != 3 || len(whole.Results) != 3 || second.TotalResults != 3 || len(second.Results) != 1 || second.Results[0].ID != whole.Results[1].ID ||
		past.TotalResults != 3 || len(past.Results) != 0 {
		t.Errorf("consumer orgs: whole %+v, limit=1&offset=1 %+v, offset=5 %+v", whole, second, past)
	}
	h.do(call{method: "GET", path: "/api/catalogs/" + org + "/sandbox/consumer-orgs?limit=1&offset=0", header: bearer(tok), want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/consumer-orgs/" + org + "/sandbox/" + corg.ID, header: bearer(tok), want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/consumer-orgs/" + org + "/sandbox/acme-corp/apps", header: bearer(tok), want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/apps/" + org + "/sandbox/acme-corp/shop", header: bearer(tok), want: 200, conforms: true})
	kept := decode[apicObject](t, h.do(call{label: "create with an Idempotency-Key", method: "POST", path: credsPath,
		header: map[string]string{"Authorization": "Bearer " + tok, "Idempotency-Key": "k-1"}, body: map[string]string{"name": "kept"}, want: 201, conforms: true}))
	again := h.do(call{label: "repeat with the same key", method: "POST", path: credsPath,
		header: map[string]string{"Authorization": "Bearer " + tok, "Idempotency-Key": "k-1"}, body: map[string]string{"name": "kept"}, want: 201, conforms: true})
	if again.header.Get("Idempotent-Replayed") != "true" || decode[apicObject](t, again).ID != kept.ID {
		t.Errorf("the repeat was not the first answer: %s", again.body)
	}
	h.do(call{label: "same key, another request", method: "POST", path: credsPath,
		header: map[string]string{"Authorization": "Bearer " + tok, "Idempotency-Key": "k-1"}, body: map[string]string{"name": "other"}, want: 422, conforms: true})
	list := decode[apicList](t, h.do(call{method: "GET", path: credsPath + "?limit=100", header: bearer(tok), want: 200, conforms: true}))
	if list.TotalResults != 1 || list.Results[0].ClientSecret != "" {
		t.Errorf("credentials = %+v (one, without secret)", list)
	}
	h.do(call{method: "GET", path: credsPath + "/kept", header: bearer(tok), want: 200, conforms: true})

	// ---- tokens: the other grants ----
	h.apicToken("toolkit client with an API key", fmt.Sprintf(`{"grant_type":"api_key","api_key":%q,"client_id":%q,"client_secret":%q}`,
		c.APIKey, iam.ToolkitClientID, iam.ToolkitClientSecret))
	pw := h.do(call{label: "password grant", method: "POST", path: "/api/token", contentType: "application/json", want: 200, conforms: true,
		body: fmt.Sprintf(`{"grant_type":"password","username":"admin","password":%q,"realm":"provider/default-idp-2","client_id":%q,"client_secret":%q}`, c.Password, c.ClientID, c.ClientSecret)})
	rt := decode[struct {
		RefreshToken string `json:"refresh_token"`
	}](t, pw).RefreshToken
	refresh := fmt.Sprintf(`{"grant_type":"refresh_token","refresh_token":%q,"client_id":%q,"client_secret":%q}`, rt, c.ClientID, c.ClientSecret)
	h.apicToken("refresh_token grant", refresh)
	h.do(call{label: "a refresh token used twice", method: "POST", path: "/api/token", body: refresh, contentType: "application/json", want: 401, conforms: true})
	h.do(call{label: "unknown grant type", method: "POST", path: "/api/token", contentType: "application/json", want: 400, rejects: true,
		body: fmt.Sprintf(`{"grant_type":"magic","client_id":%q,"client_secret":%q}`, c.ClientID, c.ClientSecret)})
	h.do(call{label: "api_key grant without api_key", method: "POST", path: "/api/token", contentType: "application/json", want: 400, conforms: true,
		body: fmt.Sprintf(`{"grant_type":"api_key","client_id":%q,"client_secret":%q}`, c.ClientID, c.ClientSecret)})
	h.do(call{label: "wrong client secret", method: "POST", path: "/api/token", contentType: "application/json", want: 401, conforms: true,
		body: fmt.Sprintf(`{"grant_type":"api_key","api_key":%q,"client_id":%q,"client_secret":"slcs_wrong"}`, c.APIKey, c.ClientID)})
	h.do(call{label: "unknown realm", method: "POST", path: "/api/token", contentType: "application/json", want: 400, conforms: true,
		body: fmt.Sprintf(`{"grant_type":"password","username":"admin","password":"x","realm":"consumer:x:y/z","client_id":%q,"client_secret":%q}`, c.ClientID, c.ClientSecret)})
	h.do(call{label: "token as text/plain", method: "POST", path: "/api/token", body: "{}", contentType: "text/plain", want: 415})

	// ---- refusals ----
	h.do(call{label: "no token", method: "GET", path: "/api/orgs", want: 401, rejects: true})
	h.do(call{label: "a forged token", method: "GET", path: "/api/orgs", header: bearer("eyJhbGciOiJub25lIn0.e30."), want: 401, conforms: true})
	h.do(call{label: "another org", method: "GET", path: "/api/orgs/someone-else/catalogs", header: bearer(tok), want: 404, conforms: true})
	h.do(call{label: "a wrong consumer org id", method: "GET", path: "/api/consumer-orgs/" + org + "/sandbox/00000000-0000-0000-0000-000000000000/apps", header: bearer(tok), want: 404, conforms: true})
	h.do(call{label: "a bad limit", method: "GET", path: "/api/orgs?limit=0", header: bearer(tok), want: 400, rejects: true})
	h.do(call{label: "a name breaking the rule", method: "POST", path: credsPath, header: bearer(tok), body: map[string]string{"name": "no good!"}, want: 400, conforms: true})
	h.do(call{label: "a taken name", method: "POST", path: "/api/consumer-orgs/" + org + "/sandbox/acme-corp/apps", header: bearer(tok), body: map[string]string{"name": "shop", "summary": "twice"}, want: 409, conforms: true})
	h.do(call{label: "a custom client_id", method: "POST", path: credsPath, header: bearer(tok), body: map[string]string{"title": "x", "client_id": "mine"}, want: 400, conforms: true})
	// Paths and methods the document does not have: API Connect errors, no redirect.
	for _, c := range []struct {
		method, path string
		want         int
	}{{"GET", "/api/cloud/topology", 404}, {"GET", "/api/orgs/", 404}, {"PUT", "/api/orgs", 405}, {"GET", "/api/orgs/" + org + "/", 404}} {
		code, b := apicCall(t, srv, c.method, c.path, tok, "")
		var e struct {
			Status  int      `json:"status"`
			Message []string `json:"message"`
		}
		if code != c.want || json.Unmarshal(b, &e) != nil || e.Status != c.want || len(e.Message) == 0 {
			t.Errorf("%s %s: %d %s, want %d in API Connect's error shape", c.method, c.path, code, b, c.want)
		}
	}
	// A viewer reads but does not change.
	viewer := apicViewer(t, srv)
	h.do(call{label: "viewer lists apps", method: "GET", path: "/api/catalogs/" + org + "/sandbox/apps", header: bearer(viewer), want: 200, conforms: true})
	h.do(call{label: "viewer creates a credential", method: "POST", path: credsPath, header: bearer(viewer), body: map[string]string{"title": "v"}, want: 403, conforms: true})
	h.do(call{label: "viewer deletes a credential", method: "DELETE", path: credsPath + "/kept", header: bearer(viewer), want: 403, conforms: true})
	h.do(call{label: "delete an unknown credential", method: "DELETE", path: credsPath + "/nothing", header: bearer(tok), want: 404, conforms: true})

	h.apicDiscovery(srv, tok, org)

	for _, ex := range h.log {
		if ex.status >= 300 && ex.status < 400 {
			t.Errorf("%s answered a redirect (%d)", ex.label, ex.status)
		}
	}
	h.requireCoverage(400, 401, 403, 404, 409, 415, 422)
}

// apicViewer makes a viewer through /api/v1 and returns its API Connect token.
func apicViewer(t *testing.T, srv *servertest.Server) string {
	t.Helper()
	admin := srv.Admin(t)
	var key struct {
		Key string `json:"key"`
	}
	mustDo(t, admin, "POST", "/api/v1/users", map[string]any{"metadata": map[string]any{"name": "vic"}, "spec": map[string]any{"role": "viewer"}}, nil)
	mustDo(t, admin, "POST", "/api/v1/api-keys", map[string]any{"metadata": map[string]any{"name": "vic"}, "spec": map[string]any{"owner": map[string]any{"kind": "user", "name": "vic"}}}, &key)
	c := srv.Creds
	c.APIKey = key.Key
	resp, err := http.Post(srv.URL+"/api/token", "application/json", strings.NewReader(infisicalToken(c)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("viewer token: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// apicSetup makes consumer org acme and app shop and returns the
// credentials path.
func apicSetup(t *testing.T, srv *servertest.Server) (credsPath string) {
	t.Helper()
	org := srv.Creds.InstanceID
	tok := apicTokenOf(t, srv)
	for _, c := range []struct{ path, body string }{
		{"/api/catalogs/" + org + "/sandbox/consumer-orgs", `{"name":"acme"}`},
		{"/api/consumer-orgs/" + org + "/sandbox/acme/apps", `{"name":"shop"}`},
	} {
		if code, body := apicCall(t, srv, "POST", c.path, tok, c.body); code != 201 {
			t.Fatalf("POST %s: %d %s", c.path, code, body)
		}
	}
	return "/api/apps/" + org + "/sandbox/acme/shop/credentials"
}

func apicTokenOf(t testing.TB, srv *servertest.Server) string {
	code, body := apicCall(t, srv, "POST", "/api/token", "", infisicalToken(srv.Creds))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if code != 200 || json.Unmarshal(body, &tok) != nil {
		t.Fatalf("token: %d %s", code, body)
	}
	return tok.AccessToken
}

func apicCall(t testing.TB, srv *servertest.Server, method, path, tok, body string) (int, []byte) {
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAPICRetryAfterADroppedConnection is Infisical's client repeating a
// POST after the connection broke before the answer arrived: the server
// committed the first, so the repeat must get that credential, not mint a
// second one (which nobody would ever revoke).
func TestAPICRetryAfterADroppedConnection(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	credsPath := apicSetup(t, srv)
	tok := apicTokenOf(t, srv)
	body := `{"title":"infisical-1764583200000"}`
	// Send the request on a raw connection and hang up without reading.
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	fmt.Fprintf(&raw, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: %d\r\n\r\n%s",
		credsPath, tok, len(body), body)
	if _, err := conn.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	// Wait for the first request's answer to be written (the server
	// committed), then drop the connection unread.
	if _, err := bufio.NewReader(conn).ReadByte(); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	// axios-retry: the same POST again, with a fresh token.
	code, again := apicCall(t, srv, "POST", credsPath, apicTokenOf(t, srv), body)
	if code != 201 {
		t.Fatalf("retry: %d %s", code, again)
	}
	var first apicObject
	_ = json.Unmarshal(again, &first)
	_, listed := apicCall(t, srv, "GET", credsPath+"?limit=100", tok, "")
	var l apicList
	_ = json.Unmarshal(listed, &l)
	if l.TotalResults != 1 || l.Results[0].ID != first.ID {
		t.Fatalf("after a retried create: %s (want exactly the one credential %s)", listed, first.ID)
	}
	// A later, different create is a new credential.
	if code, b := apicCall(t, srv, "POST", credsPath, tok, `{"title":"infisical-1764583200001"}`); code != 201 {
		t.Fatalf("a second, different create: %d %s", code, b)
	}
}

// TestAPICConcurrentClients runs three clients for 10 s, each doing
// token + create + delete in a loop, as three Infisical leases would:
// no error, no duplicate, nothing left, and no secret in logs or audit.
func TestAPICConcurrentClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 10 s")
	}
	// The limits would stop the loop, not what it tests (TestAPICRateLimits does).
	srv := servertest.Start(t, servertest.Options{Args: []string{"--rate-limit-client", "off", "--rate-limit-instance", "off"}})
	credsPath := apicSetup(t, srv)
	var (
		mu      sync.Mutex
		secrets []string
		ids     = map[string]bool{}
	)
	end := time.Now().Add(10 * time.Second) // how long to load the server, not an assertion
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				tok := apicTokenOf(t, srv)
				code, b := apicCall(t, srv, "POST", credsPath, tok, fmt.Sprintf(`{"title":"infisical-g%d-%d"}`, g, i))
				var cr apicObject
				if code != 201 || json.Unmarshal(b, &cr) != nil || cr.ClientSecret == "" {
					t.Errorf("client %d create %d: %d %s", g, i, code, b)
					return
				}
				mu.Lock()
				dup := ids[cr.ID]
				ids[cr.ID] = true
				secrets = append(secrets, cr.ClientSecret)
				mu.Unlock()
				if dup {
					t.Errorf("client %d: credential %s created twice", g, cr.ID)
				}
				if code, b := apicCall(t, srv, "DELETE", credsPath+"/"+cr.ID, apicTokenOf(t, srv), ""); code != 204 {
					t.Errorf("client %d delete %d: %d %s", g, i, code, b)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(ids) < 3 {
		t.Fatalf("only %d credentials made in 10 s", len(ids))
	}
	_, left := apicCall(t, srv, "GET", credsPath, apicTokenOf(t, srv), "")
	var l apicList
	_ = json.Unmarshal(left, &l)
	if l.TotalResults != 0 {
		t.Errorf("credentials left after every create was deleted: %s", left)
	}
	// Canaries: every secret handed out, and the instance's own, are
	// nowhere in the server's logs or the audit trail.
	admin := srv.Admin(t)
	var audit struct {
		AuditEvents []map[string]any `json:"auditEvents"`
	}
	mustDo(t, admin, "GET", "/api/v1/audit?limit=10000", nil, &audit)
	auditJSON, _ := json.Marshal(audit)
	haystacks := map[string]string{"stdout": srv.Stdout(), "stderr": srv.Stderr(), "audit": string(auditJSON)}
	for where, text := range haystacks {
		// The first start prints the instance's own credentials on stdout,
		// once, by design: they are canaries everywhere else.
		canaries := secrets
		if where != "stdout" {
			canaries = append(append([]string{}, secrets...), srv.Creds.ClientSecret, srv.Creds.APIKey)
		}
		for _, s := range canaries {
			if strings.Contains(text, s) {
				t.Errorf("a secret reached the %s", where)
				break
			}
		}
	}
	created := 0
	for _, ev := range audit.AuditEvents {
		if ev["action"] == "appCredential.create" && ev["outcome"] == "success" {
			created++
		}
	}
	if created != len(ids) {
		t.Errorf("%d creates audited, %d made", created, len(ids))
	}
	keys := make([]string, 0, len(ids))
	for id := range ids {
		keys = append(keys, id)
	}
	sort.Strings(keys)
	t.Logf("%d credentials created and deleted by 3 clients", len(keys))
}

// mustDo calls /api/v1 as c and decodes a 2xx answer into out (may be nil).
func mustDo(t *testing.T, c *servertest.Client, method, path string, body, out any) {
	t.Helper()
	code, b := c.Do(method, path, body)
	if code >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// TestAPICRateLimits: API Connect's wire counts against the same limits as
// /api/v1, token calls included, and answers 429 in its own error shape.
func TestAPICRateLimits(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--rate-limit-client", "3/1m"}})
	h := newAPICHarness(t, srv)
	for i := 0; i < 3; i++ {
		h.apicToken(fmt.Sprintf("token %d of 3", i+1), infisicalToken(srv.Creds))
	}
	ex := h.do(call{label: "a fourth token call", method: "POST", path: "/api/token", body: infisicalToken(srv.Creds), contentType: "application/json", want: 429, conforms: true})
	var e struct {
		Status int `json:"status"`
	}
	if json.Unmarshal(ex.body, &e) != nil || e.Status != 429 || ex.header.Get("Retry-After") == "" {
		t.Errorf("over the limit: %s %v", ex.body, ex.header)
	}
}
