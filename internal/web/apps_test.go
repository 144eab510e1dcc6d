package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// TestConsumerAppsPages drives the consumer-apps pages as a developer
// would — consumer org, app with a lease policy, a lease (shown once,
// usable at /oauth/token), renewal, revocation — and checks a viewer
// sees the same pages without a single form that writes.
func TestConsumerAppsPages(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none"}})
	c := srv.Creds
	b := newBrowser(t, srv.URL)
	if p := b.login(c.InstanceID, c.Username, c.Password); p.code != http.StatusSeeOther {
		t.Fatalf("login = %d", p.code)
	}
	list := b.get("/apps")
	if list.code != 200 || !strings.Contains(list.body, `Catalog <a href="/apps/sandbox">sandbox</a>`) {
		t.Fatalf("GET /apps = %d\n%s", list.code, list.body)
	}
	tok := csrf(t, list)
	if p := b.post("/apps/consumer-orgs", url.Values{"csrf": {tok}, "catalog": {"sandbox"}, "name": {"bad name!"}}); p.code != 400 || !strings.Contains(p.body, "not allowed") {
		t.Errorf("bad consumer org name = %d", p.code)
	}
	if p := b.post("/apps/consumer-orgs", url.Values{"csrf": {tok}, "catalog": {"sandbox"}, "name": {"acme"}, "title": {"ACME"}}); p.code != http.StatusSeeOther {
		t.Fatalf("create consumer org = %d\n%s", p.code, p.body)
	}
	if p := b.post("/apps", url.Values{"csrf": {tok}, "org": {"sandbox/acme"}, "name": {"shop"}, "defaultTtl": {"soon"}}); p.code != 400 || !strings.Contains(p.body, "not a duration") {
		t.Errorf("bad TTL = %d", p.code)
	}
	if p := b.post("/apps", url.Values{"csrf": {tok}, "org": {"sandbox/acme"}, "name": {"shop"}, "defaultTtl": {"1h"}, "maxTtl": {"2h"}}); p.code != http.StatusSeeOther {
		t.Fatalf("create app = %d\n%s", p.code, p.body)
	}
	if p := b.get("/apps"); !strings.Contains(p.body, `href="/apps/sandbox/acme/shop"`) || !strings.Contains(p.body, "max 2h0m0s") {
		t.Errorf("the app is not listed with its policy:\n%s", p.body)
	}
	app := b.get("/apps/sandbox/acme/shop")
	if app.code != 200 || !strings.Contains(app.body, "No credentials yet") {
		t.Fatalf("app page = %d\n%s", app.code, app.body)
	}
	if p := b.post("/apps/sandbox/acme/shop/credentials", url.Values{"csrf": {tok}, "kind": {"lease"}, "ttl": {"3h"}}); p.code != 400 || !strings.Contains(p.body, "maxTtl") {
		t.Errorf("lease above the max = %d", p.code)
	}
	shownPage := b.post("/apps/sandbox/acme/shop/credentials", url.Values{"csrf": {tok}, "kind": {"lease"}, "name": {"ci"}})
	if shownPage.code != 200 || !strings.Contains(shownPage.body, "Lease ci created") || !strings.Contains(shownPage.body, `id="expires-at"`) ||
		!strings.Contains(shownPage.body, `data-download="app-credential-ci.json"`) {
		t.Fatalf("create lease = %d\n%s", shownPage.code, shownPage.body)
	}
	id, sec := shown(t, shownPage, "client-id"), shown(t, shownPage, "client-secret")
	// The lease works at the token endpoint.
	resp, err := http.PostForm(srv.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {sec}})
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		Scope string `json:"scope"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if resp.StatusCode != 200 || tr.Scope != "app" {
		t.Fatalf("token for the lease: %d %+v", resp.StatusCode, tr)
	}
	app = b.get("/apps/sandbox/acme/shop")
	if strings.Contains(app.body, sec) || !strings.Contains(app.body, id) {
		t.Fatalf("the app page shows the secret, or not the client id")
	}
	leaseID := regexp.MustCompile(`/credentials/([0-9a-f-]{36})/renew`).FindStringSubmatch(app.body)
	if leaseID == nil {
		t.Fatalf("no renew form for the lease:\n%s", app.body)
	}
	if p := b.post("/apps/sandbox/acme/shop/credentials/"+leaseID[1]+"/renew", url.Values{"csrf": {tok}, "increment": {"2h"}}); p.code != http.StatusSeeOther {
		t.Fatalf("renew = %d\n%s", p.code, p.body)
	}
	if p := b.get("/apps/sandbox/acme/shop"); !strings.Contains(p.body, "capped") {
		t.Errorf("a renewal to the maximum does not say it was capped:\n%s", p.body)
	}
	if p := b.post("/apps/sandbox/acme/shop/credentials/"+leaseID[1]+"/delete", url.Values{"csrf": {tok}}); p.code != http.StatusSeeOther {
		t.Fatalf("revoke = %d", p.code)
	}
	if p := b.get("/apps/sandbox/acme/shop"); !strings.Contains(p.body, "No credentials yet") {
		t.Errorf("the revoked lease is still listed")
	}
	if p := b.get("/apps/sandbox/acme/nothing"); p.code != 404 {
		t.Errorf("unknown app page = %d", p.code)
	}

	// A catalog's and an org's own pages create in place and answer there.
	if p := b.post("/apps/consumer-orgs", url.Values{"csrf": {tok}, "catalog": {"sandbox"}, "back": {"catalog"}, "name": {"bad name!"}}); p.code != 400 ||
		!strings.Contains(p.body, `id="corg-error"`) || !strings.Contains(p.body, "<h1>Catalog sandbox</h1>") {
		t.Errorf("bad consumer org name on the catalog's page = %d\n%s", p.code, p.body)
	}
	if p := b.post("/apps/consumer-orgs", url.Values{"csrf": {tok}, "catalog": {"sandbox"}, "back": {"catalog"}, "name": {"globex"}}); p.code != http.StatusSeeOther || p.location != "/apps/sandbox" {
		t.Errorf("create on the catalog's page = %d %q", p.code, p.location)
	}
	if p := b.get("/apps/sandbox"); !strings.Contains(p.body, `href="/apps/sandbox/globex"`) || !strings.Contains(p.body, `href="/apps/sandbox/acme"`) {
		t.Errorf("the catalog's page does not list its orgs:\n%s", p.body)
	}
	if p := b.post("/apps", url.Values{"csrf": {tok}, "org": {"sandbox/globex"}, "back": {"org"}, "name": {"till"}, "maxTtl": {"never"}}); p.code != 400 ||
		!strings.Contains(p.body, `id="app-error"`) || !strings.Contains(p.body, "<h1>Consumer org globex</h1>") {
		t.Errorf("bad TTL on the org's page = %d\n%s", p.code, p.body)
	}
	if p := b.post("/apps", url.Values{"csrf": {tok}, "org": {"sandbox/globex"}, "back": {"org"}, "name": {"till"}}); p.code != http.StatusSeeOther || p.location != "/apps/sandbox/globex" {
		t.Errorf("create on the org's page = %d %q", p.code, p.location)
	}
	if p := b.get("/apps/sandbox/globex"); !strings.Contains(p.body, `href="/apps/sandbox/globex/till"`) {
		t.Errorf("the org's page does not list its app:\n%s", p.body)
	}
	for _, path := range []string{"/apps/nosuch", "/apps/sandbox/nosuch"} {
		if p := b.get(path); p.code != 404 {
			t.Errorf("GET %s = %d, want 404", path, p.code)
		}
	}

	// A viewer reads the same pages and finds no form that writes.
	admin := srv.Login(t, c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)
	v := viewerBrowser(t, srv, admin)
	for _, path := range []string{"/apps", "/apps/sandbox", "/apps/sandbox/acme", "/apps/sandbox/acme/shop"} {
		p := v.get(path)
		if p.code != 200 || strings.Contains(p.body, `action="/apps`) {
			t.Errorf("viewer's %s = %d, or it has a write form:\n%s", path, p.code, p.body)
		}
	}
	if p := v.post("/apps/consumer-orgs", url.Values{"csrf": {csrf(t, v.get("/apps"))}, "catalog": {"sandbox"}, "name": {"x"}}); p.code != http.StatusForbidden {
		t.Errorf("viewer's create = %d, want 403", p.code)
	}
}
