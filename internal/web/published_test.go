package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
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

	// A viewer reads the same pages and finds no form that writes.
	if code, body := admin.Do("POST", "/api/v1/users", map[string]any{"metadata": map[string]any{"name": "vera"},
		"spec": map[string]any{"role": "viewer", "password": "a-long-viewer-password"}}); code != 201 {
		t.Fatalf("create viewer: %d %s", code, body)
	}
	v := newBrowser(t, srv.URL)
	if p := v.login(c.InstanceID, "vera", "a-long-viewer-password"); p.code != http.StatusSeeOther {
		t.Fatalf("viewer login = %d", p.code)
	}
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
