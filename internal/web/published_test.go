package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// TestPublishedAPIPages drives the published-API pages as a developer
// would — publish an API of an uploaded BAR, download its OpenAPI
// document, create a plan, subscribe an app (pending), approve,
// unsubscribe — with bad input refused on the page and nothing written,
// and checks a viewer reads the same pages without a form that writes.
func TestPublishedAPIPages(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none"}})
	c := srv.Creds
	admin := srv.Login(t, c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)
	b := newBrowser(t, srv.URL)
	if p := b.login(c.InstanceID, c.Username, c.Password); p.code != http.StatusSeeOther {
		t.Fatalf("login = %d", p.code)
	}
	data, _, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", "hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	list := b.get("/apis")
	if list.code != 200 || !strings.Contains(list.body, `id="no-apis"`) {
		t.Fatalf("GET /apis = %d\n%s", list.code, list.body)
	}
	tok := csrf(t, list)
	if p := b.upload("/bar-files", map[string]string{"csrf": tok}, "hello.bar", data); p.code != http.StatusSeeOther {
		t.Fatalf("upload = %d\n%s", p.code, p.body)
	}
	if p := b.post("/apis", url.Values{"csrf": {"wrong"}, "name": {"hello"}, "version": {"1.0.0"}, "barFile": {"hello"}}); p.code != http.StatusForbidden {
		t.Errorf("publish without the CSRF token = %d", p.code)
	}
	for _, bad := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"name": {"hello"}, "barFile": {"hello"}}, "spec.version is missing"},
		{url.Values{"name": {"hello"}, "version": {"1.0.0"}, "barFile": {"nosuch"}}, "BAR file nosuch, which does not exist"},
		{url.Values{"name": {"hello"}, "version": {"1.0.0"}, "barFile": {"hello"}, "basePath": {"/bye"}}, "not under spec.basePath /bye"},
		{url.Values{"name": {"Bad Name"}, "version": {"1.0.0"}, "barFile": {"hello"}}, "API"},
	} {
		bad.form.Set("csrf", tok)
		p := b.post("/apis", bad.form)
		if p.code != 400 || !strings.Contains(p.body, bad.want) || !strings.Contains(p.body, `id="api-error"`) {
			t.Errorf("publish %v = %d, want 400 saying %q\n%s", bad.form, p.code, bad.want, p.body)
		}
	}
	if code, body := admin.Do("GET", "/api/v1/apis", nil); code != 200 || strings.Contains(string(body), `"name":"hello"`) {
		t.Fatalf("a refused form published something: %s", body)
	}
	if p := b.post("/apis", url.Values{"csrf": {tok}, "name": {"hello"}, "title": {"Greetings"}, "version": {"1.0.0"}, "barFile": {"hello"}, "basePath": {"/hello"}}); p.code != http.StatusSeeOther || p.location != "/apis/hello" {
		t.Fatalf("publish = %d %q\n%s", p.code, p.location, p.body)
	}
	if p := b.get("/apis"); !strings.Contains(p.body, `href="/apis/hello"`) || !strings.Contains(p.body, "Greetings") {
		t.Errorf("the API is not listed:\n%s", p.body)
	}
	detail := b.get("/apis/hello")
	if detail.code != 200 || !strings.Contains(detail.body, "GET /hello/{name}") || !strings.Contains(detail.body, "No plan gives access") {
		t.Fatalf("API page = %d\n%s", detail.code, detail.body)
	}
	doc := b.get("/apis/hello/openapi")
	var openapi struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if doc.code != 200 || json.Unmarshal([]byte(doc.body), &openapi) != nil || !strings.HasPrefix(openapi.OpenAPI, "3.") || len(openapi.Paths) == 0 {
		t.Fatalf("OpenAPI download = %d\n%s", doc.code, doc.body)
	}
	if p := b.get("/apis/nothing"); p.code != 404 {
		t.Errorf("unknown API page = %d", p.code)
	}

	// Plans.
	if p := b.post("/plans", url.Values{"csrf": {tok}, "name": {"gold"}, "api": {"hello"}, "auth": {"client-id"}, "rateLimit": {"lots"}}); p.code != 400 || !strings.Contains(p.body, "spec.rateLimit") ||
		!strings.Contains(p.body, `id="plan-api-hello" name="api" value="hello" checked`) {
		t.Errorf("bad rate limit = %d (and the ticked API kept?)\n%s", p.code, p.body)
	}
	if p := b.post("/plans", url.Values{"csrf": {tok}, "name": {"gold"}, "auth": {"client-id"}}); p.code != 400 || !strings.Contains(p.body, "spec.apis is empty") {
		t.Errorf("plan without APIs = %d", p.code)
	}
	if p := b.post("/plans", url.Values{"csrf": {tok}, "name": {"gold"}, "api": {"hello"}, "auth": {"client-id"}, "clientSecret": {"true"}, "rateLimit": {"100/1m"}, "approval": {"true"}}); p.code != http.StatusSeeOther || p.location != "/plans/gold" {
		t.Fatalf("create plan = %d %q\n%s", p.code, p.location, p.body)
	}
	if p := b.get("/plans"); !strings.Contains(p.body, `href="/plans/gold"`) || !strings.Contains(p.body, "client-id + secret") || !strings.Contains(p.body, "100/1m per app") {
		t.Errorf("plan list:\n%s", p.body)
	}
	if p := b.get("/apis/hello"); !strings.Contains(p.body, `href="/plans/gold"`) {
		t.Errorf("the API page does not name its plan")
	}

	// Subscribe an app, approve, unsubscribe.
	if code, body := admin.Do("POST", "/api/v1/catalogs/sandbox/consumer-orgs", map[string]any{"metadata": map[string]any{"name": "acme"}}); code != 201 {
		t.Fatalf("consumer org: %d %s", code, body)
	}
	if code, body := admin.Do("POST", "/api/v1/catalogs/sandbox/consumer-orgs/acme/apps", map[string]any{"metadata": map[string]any{"name": "shop"}}); code != 201 {
		t.Fatalf("app: %d %s", code, body)
	}
	plan := b.get("/plans/gold")
	if plan.code != 200 || !strings.Contains(plan.body, `<option value="sandbox/acme/shop"`) || !strings.Contains(plan.body, `id="no-subscriptions"`) {
		t.Fatalf("plan page = %d\n%s", plan.code, plan.body)
	}
	if p := b.post("/plans/gold/subscriptions", url.Values{"csrf": {tok}, "app": {"sandbox/acme/nobody"}}); p.code != 400 || !strings.Contains(p.body, `id="subscribe-error"`) {
		t.Errorf("subscribe a missing app = %d\n%s", p.code, p.body)
	}
	if p := b.post("/plans/silver/subscriptions", url.Values{"csrf": {tok}, "app": {"sandbox/acme/shop"}}); p.code != 400 && p.code != 404 {
		t.Errorf("subscribe to a missing plan = %d", p.code)
	}
	if p := b.post("/plans/gold/subscriptions", url.Values{"csrf": {tok}, "app": {"sandbox/acme/shop"}}); p.code != http.StatusSeeOther || p.location != "/plans/gold" {
		t.Fatalf("subscribe = %d %q\n%s", p.code, p.location, p.body)
	}
	plan = b.get("/plans/gold")
	if !strings.Contains(plan.body, "pending until it is approved") || !strings.Contains(plan.body, `aria-label="Approve subscription shop-gold"`) {
		t.Fatalf("after subscribing:\n%s", plan.body)
	}
	if code, body := admin.Do("GET", "/api/v1/subscriptions/shop-gold", nil); code != 200 || !strings.Contains(string(body), `"pending"`) {
		t.Fatalf("the API does not see the pending subscription: %d %s", code, body)
	}
	if p := b.post("/subscriptions/shop-gold/approve", url.Values{"csrf": {tok}, "back": {"plan"}}); p.code != http.StatusSeeOther || p.location != "/plans/gold" {
		t.Fatalf("approve = %d %q", p.code, p.location)
	}
	if p := b.get("/subscriptions"); !strings.Contains(p.body, "approved by user:") || !strings.Contains(p.body, "sandbox/acme/shop") {
		t.Errorf("subscriptions after approval:\n%s", p.body)
	}
	// In use: the API (in a plan) and the plan (with a subscription) stay.
	if p := b.post("/apis/hello/delete", url.Values{"csrf": {tok}}); p.code != 409 || !strings.Contains(p.body, "is in plan gold") {
		t.Errorf("delete an API in a plan = %d\n%s", p.code, p.body)
	}
	if p := b.post("/plans/gold/delete", url.Values{"csrf": {tok}}); p.code != 409 || !strings.Contains(p.body, "shop-gold") {
		t.Errorf("delete a plan with a subscription = %d\n%s", p.code, p.body)
	}
	if p := b.post("/bar-files/hello/delete", url.Values{"csrf": {tok}}); p.code != 409 || !strings.Contains(p.body, "published API(s) hello") {
		t.Errorf("delete a BAR file a published API serves = %d\n%s", p.code, p.body)
	}
	if _, audit := admin.Do("GET", "/api/v1/audit", nil); !strings.Contains(string(audit), `"action":"barFile.delete","object":"barFile/hello","outcome":"failure"`) {
		t.Errorf("the refused BAR delete is not audited:\n%s", audit)
	}

	// A viewer reads the same pages and finds no form that writes.
	v := viewerBrowser(t, srv, admin)
	for _, path := range []string{"/apis", "/apis/hello", "/plans", "/plans/gold", "/subscriptions"} {
		p := v.get(path)
		if p.code != 200 || strings.Contains(p.body, `method="post" action="/apis`) || strings.Contains(p.body, `method="post" action="/plans`) ||
			strings.Contains(p.body, `method="post" action="/subscriptions`) {
			t.Errorf("viewer's %s = %d, or it has a write form:\n%s", path, p.code, p.body)
		}
	}
	vtok := csrf(t, v.get("/subscriptions"))
	if p := v.post("/subscriptions/shop-gold/delete", url.Values{"csrf": {vtok}}); p.code != http.StatusForbidden {
		t.Errorf("viewer's unsubscribe = %d, want 403", p.code)
	}

	if p := b.post("/subscriptions/shop-gold/delete", url.Values{"csrf": {tok}}); p.code != http.StatusSeeOther || p.location != "/subscriptions" {
		t.Fatalf("unsubscribe = %d %q", p.code, p.location)
	}
	if code, _ := admin.Do("GET", "/api/v1/subscriptions/shop-gold", nil); code != 404 {
		t.Errorf("the subscription is still there after unsubscribing: %d", code)
	}
	if p := b.post("/plans/gold/delete", url.Values{"csrf": {tok}}); p.code != http.StatusSeeOther {
		t.Errorf("delete the plan = %d\n%s", p.code, p.body)
	}
	if p := b.post("/apis/hello/delete", url.Values{"csrf": {tok}}); p.code != http.StatusSeeOther {
		t.Errorf("delete the API = %d\n%s", p.code, p.body)
	}
	if code, _ := admin.Do("GET", "/api/v1/apis/hello", nil); code != 404 {
		t.Errorf("the API is still there: %d", code)
	}
}

// TestPublishedAPIEditPages changes an existing API and plan through
// their edit pages, on each store: the forms come filled in from the
// stored spec, a change is saved as the API's PUT saves it (same id,
// audited as the logged-in user), bad input is refused on the page with
// the field named and nothing changed, an edit made on a form older than
// the object's last write is refused (409), and a viewer may neither open
// nor post the forms.
func TestPublishedAPIEditPages(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			srv := servertest.Start(t, servertest.Options{Store: storetest.DSN(t, kind), Args: []string{"--runtime-backend", "none"}})
			c := srv.Creds
			admin := srv.Admin(t)
			b := newBrowser(t, srv.URL)
			if p := b.login(c.InstanceID, c.Username, c.Password); p.code != http.StatusSeeOther {
				t.Fatalf("login = %d", p.code)
			}
			data, _, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", "hello"), nil)
			if err != nil {
				t.Fatal(err)
			}
			tok := csrf(t, b.get("/apis"))
			if p := b.upload("/bar-files", map[string]string{"csrf": tok}, "hello.bar", data); p.code != http.StatusSeeOther {
				t.Fatalf("upload = %d\n%s", p.code, p.body)
			}
			if p := b.post("/apis", url.Values{"csrf": {tok}, "name": {"hello"}, "version": {"1.0.0"}, "barFile": {"hello"}, "basePath": {"/hello"}}); p.code != http.StatusSeeOther {
				t.Fatalf("publish = %d\n%s", p.code, p.body)
			}
			if code, body := admin.Do("PUT", "/api/v1/plans/gold", map[string]any{"metadata": map[string]any{"name": "gold"},
				"spec": map[string]any{"apis": []string{"hello"}, "auth": "client-id", "clientSecret": true, "rateLimit": "100/1m", "approval": true}}); code != 201 {
				t.Fatalf("create plan: %d %s", code, body)
			}
			stored := func(path string) string {
				t.Helper()
				code, body := admin.Do("GET", path, nil)
				if code != 200 {
					t.Fatalf("GET %s = %d %s", path, code, body)
				}
				return string(body)
			}
			var obj struct {
				Metadata struct{ ID string }
				Spec     map[string]any
			}

			// The API's edit page, filled in from the stored spec.
			if p := b.get("/apis/hello"); !strings.Contains(p.body, `href="/apis/hello/edit"`) {
				t.Errorf("the API page has no edit link for a developer:\n%s", p.body)
			}
			edit := b.get("/apis/hello/edit")
			form := hiddenValue(t, edit, "objectVersion")
			if edit.code != 200 || !strings.Contains(edit.body, `id="api-version" name="version" value="1.0.0"`) ||
				!strings.Contains(edit.body, `id="api-base" name="basePath" value="/hello"`) || !strings.Contains(edit.body, `<option value="hello" selected>`) {
				t.Fatalf("GET /apis/hello/edit = %d, not filled in:\n%s", edit.code, edit.body)
			}
			before := stored("/api/v1/apis/hello")
			good := url.Values{"csrf": {tok}, "objectVersion": {form}, "version": {"1.1.0"}, "title": {"Greetings"}, "description": {"Says hello"},
				"basePath": {"/hello"}, "barFile": {"hello"}}
			with := func(v url.Values, k, val string) url.Values {
				out := url.Values{}
				for kk, vv := range v {
					out[kk] = vv
				}
				out.Set(k, val)
				return out
			}
			if p := b.post("/apis/hello/edit", with(good, "csrf", "wrong")); p.code != http.StatusForbidden {
				t.Errorf("edit without the CSRF token = %d", p.code)
			}
			for _, bad := range []struct{ field, value, want string }{
				{"version", "", "spec.version is missing"},
				{"version", strings.Repeat("9", 65), "spec.version is longer than 64"},
				{"basePath", "/bye", "not under spec.basePath /bye"},
				{"barFile", "nosuch", "BAR file nosuch, which does not exist"},
				{"flows", "nosuch", "nosuch"},
			} {
				p := b.post("/apis/hello/edit", with(good, bad.field, bad.value))
				if p.code != 400 || !strings.Contains(p.body, bad.want) || !strings.Contains(p.body, `id="api-error"`) || !strings.Contains(p.body, `value="Greetings"`) {
					t.Errorf("edit with %s=%q = %d, want 400 saying %q with the typed values kept\n%s", bad.field, bad.value, p.code, bad.want, p.body)
				}
			}
			if after := stored("/api/v1/apis/hello"); after != before {
				t.Fatalf("a refused edit changed the API:\n%s\n%s", before, after)
			}
			if p := b.post("/apis/hello/edit", good); p.code != http.StatusSeeOther || p.location != "/apis/hello" {
				t.Fatalf("edit = %d %q\n%s", p.code, p.location, p.body)
			}
			json.Unmarshal([]byte(before), &obj)
			id := obj.Metadata.ID
			json.Unmarshal([]byte(stored("/api/v1/apis/hello")), &obj)
			if obj.Metadata.ID != id || obj.Spec["version"] != "1.1.0" || obj.Spec["title"] != "Greetings" || obj.Spec["description"] != "Says hello" {
				t.Errorf("after the edit: id %s (was %s), spec %v", obj.Metadata.ID, id, obj.Spec)
			}
			if p := b.get("/apis/hello"); !strings.Contains(p.body, "version 1.1.0") || !strings.Contains(p.body, "API hello updated") {
				t.Errorf("the API page after the edit:\n%s", p.body)
			}
			// The same form again is older than the write it made.
			if p := b.post("/apis/hello/edit", with(good, "version", "2.0.0")); p.code != http.StatusConflict || !strings.Contains(p.body, "reload the page") {
				t.Errorf("edit on a stale form = %d\n%s", p.code, p.body)
			}
			// By id, the page edits the API of that id (not a new one named by it).
			byID := b.get("/apis/" + id + "/edit")
			if p := b.post("/apis/"+id+"/edit", with(with(good, "objectVersion", hiddenValue(t, byID, "objectVersion")), "version", "1.2.0")); p.code != http.StatusSeeOther || p.location != "/apis/hello" {
				t.Errorf("edit by id = %d %q\n%s", p.code, p.location, p.body)
			}
			if list := stored("/api/v1/apis"); strings.Count(list, `"metadata":`) != 1 || !strings.Contains(list, `"version":"1.2.0"`) {
				t.Errorf("after editing by id, the APIs are:\n%s", list)
			}

			// The plan's edit page.
			edit = b.get("/plans/gold/edit")
			if edit.code != 200 || !strings.Contains(edit.body, `<option value="client-id" selected>`) || !strings.Contains(edit.body, `id="plan-rate" name="rateLimit" value="100/1m"`) ||
				!strings.Contains(edit.body, `id="plan-secret" name="clientSecret" value="true" checked`) || !strings.Contains(edit.body, `id="plan-approval" name="approval" value="true" checked`) ||
				!strings.Contains(edit.body, `id="plan-api-hello" name="api" value="hello" checked`) {
				t.Fatalf("GET /plans/gold/edit = %d, not filled in:\n%s", edit.code, edit.body)
			}
			before = stored("/api/v1/plans/gold")
			good = url.Values{"csrf": {tok}, "objectVersion": {hiddenValue(t, edit, "objectVersion")}, "api": {"hello"}, "auth": {"oauth"}, "rateLimit": {"10/1s"}, "title": {"Gold"}}
			for _, bad := range []struct {
				form url.Values
				want string
			}{
				{with(good, "rateLimit", "lots"), "spec.rateLimit"},
				{with(good, "auth", "magic"), "spec.auth"},
				{with(good, "clientSecret", "true"), "spec.clientSecret applies to client-id plans only"},
				{with(good, "api", "nosuch"), "spec.apis names API nosuch"},
				{func() url.Values { v := with(good, "auth", "oauth"); v.Del("api"); return v }(), "spec.apis is empty"},
			} {
				p := b.post("/plans/gold/edit", bad.form)
				if p.code != 400 || !strings.Contains(p.body, bad.want) || !strings.Contains(p.body, `id="plan-error"`) {
					t.Errorf("plan edit %v = %d, want 400 saying %q\n%s", bad.form, p.code, bad.want, p.body)
				}
			}
			if after := stored("/api/v1/plans/gold"); after != before {
				t.Fatalf("a refused edit changed the plan:\n%s\n%s", before, after)
			}
			if p := b.post("/plans/gold/edit", good); p.code != http.StatusSeeOther || p.location != "/plans/gold" {
				t.Fatalf("plan edit = %d %q\n%s", p.code, p.location, p.body)
			}
			obj.Spec = nil
			json.Unmarshal([]byte(stored("/api/v1/plans/gold")), &obj)
			if obj.Spec["auth"] != "oauth" || obj.Spec["rateLimit"] != "10/1s" || obj.Spec["approval"] != nil || obj.Spec["clientSecret"] != nil || obj.Spec["title"] != "Gold" {
				t.Errorf("the plan after the edit: %v", obj.Spec)
			}
			if p := b.post("/plans/gold/edit", with(good, "rateLimit", "1/1s")); p.code != http.StatusConflict {
				t.Errorf("plan edit on a stale form = %d", p.code)
			}
			for _, path := range []string{"/apis/nothing/edit", "/plans/nothing/edit"} {
				if p := b.get(path); p.code != 404 {
					t.Errorf("GET %s = %d", path, p.code)
				}
				if p := b.post(path, good); p.code != 404 {
					t.Errorf("POST %s = %d", path, p.code)
				}
			}

			// Audited as the dashboard's user, as the API's PUT is.
			audit := stored("/api/v1/audit")
			for _, action := range []string{"api.update", "plan.update"} {
				if !strings.Contains(audit, `"`+action+`"`) {
					t.Errorf("the audit log has no %s:\n%s", action, audit)
				}
			}
			if !strings.Contains(audit, "user:"+c.Username) {
				t.Errorf("the audit log does not name user:%s", c.Username)
			}

			// A viewer can neither open nor post the edit forms.
			v := viewerBrowser(t, srv, admin)
			vtok := csrf(t, v.get("/apis"))
			before = stored("/api/v1/apis/hello") + stored("/api/v1/plans/gold")
			for _, path := range []string{"/apis/hello/edit", "/plans/gold/edit"} {
				if p := v.get(path); p.code != http.StatusForbidden {
					t.Errorf("viewer's GET %s = %d, want 403", path, p.code)
				}
				if p := v.post(path, with(good, "csrf", vtok)); p.code != http.StatusForbidden {
					t.Errorf("viewer's POST %s = %d, want 403", path, p.code)
				}
			}
			if p := v.get("/apis/hello"); strings.Contains(p.body, "/edit") {
				t.Errorf("the viewer's API page links to the edit form")
			}
			if after := stored("/api/v1/apis/hello") + stored("/api/v1/plans/gold"); after != before {
				t.Errorf("the viewer's posts changed something")
			}
		})
	}
}

// hiddenValue is the value of a page's hidden input of that name.
func hiddenValue(t *testing.T, p page, name string) string {
	t.Helper()
	m := regexp.MustCompile(`<input type="hidden" name="` + name + `" value="([^"]*)">`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no hidden %s in the page:\n%s", name, p.body)
	}
	return m[1]
}
