package conformance

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// publishedAPIs drives published APIs, plans and subscriptions over the
// BAR file hello, which the caller has uploaded.
func (h *harness) publishedAPIs(admin, viewer *servertest.Client, barURL string) {
	t := h.t
	api := func(spec map[string]any) map[string]any {
		return map[string]any{"metadata": map[string]any{"name": "hello"}, "spec": spec}
	}
	h.do(call{label: "publish an API of a missing BAR file", method: "POST", path: "/api/v1/apis", as: admin, want: 400, conforms: true,
		body: api(map[string]any{"version": "1.0.0", "barFile": "nosuch"})})
	h.do(call{label: "publish an API without a version", method: "POST", path: "/api/v1/apis", as: admin, want: 400, rejects: true,
		body: api(map[string]any{"barFile": "hello"})})
	h.do(call{label: "publish an API with flows outside its base path", method: "POST", path: "/api/v1/apis", as: admin, want: 400, conforms: true,
		body: api(map[string]any{"version": "1.0.0", "barFile": "hello", "basePath": "/bye"})})
	h.do(call{label: "viewer publishes an API", method: "POST", path: "/api/v1/apis", as: viewer, want: 403, conforms: true,
		body: api(map[string]any{"version": "1.0.0", "barFile": "hello"})})
	created := decode[map[string]any](t, h.do(call{label: "publish an API", method: "POST", path: "/api/v1/apis", as: admin, want: 201, conforms: true,
		body: api(map[string]any{"version": "1.0.0", "barFile": "hello", "basePath": "/hello"})}))
	h.do(call{label: "publish a taken API name", method: "POST", path: "/api/v1/apis", as: admin, want: 409, conforms: true,
		body: api(map[string]any{"version": "1.0.0", "barFile": "hello"})})
	got := decode[map[string]any](t, h.do(call{method: "GET", path: "/api/v1/apis/hello", as: viewer, want: 200, conforms: true}))
	id, _ := got["metadata"].(map[string]any)["id"].(string)
	h.do(call{label: "read an API by id", method: "GET", path: "/api/v1/apis/" + id, as: viewer, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/apis/none", as: viewer, want: 404, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/apis", as: viewer, want: 200, conforms: true})
	doc := h.do(call{method: "GET", path: "/api/v1/apis/hello/openapi", as: viewer, want: 200, conforms: true})
	if !strings.Contains(string(doc.body), `"/{name}"`) || !strings.Contains(doc.header.Get("Content-Disposition"), "hello-openapi.json") {
		t.Errorf("the generated document of hello: %s (%v)", doc.body, doc.header)
	}
	if u, _ := created["status"].(map[string]any)["documentURL"].(string); !strings.HasSuffix(u, "/api/v1/apis/hello/openapi") {
		t.Errorf("documentURL = %q", u)
	}
	got["spec"].(map[string]any)["title"] = "Hello"
	h.do(call{label: "PUT back an edited API", method: "PUT", path: "/api/v1/apis/hello", as: admin, body: got, want: 200, conforms: true})
	w := h.stream(call{label: "watch APIs", method: "GET", path: "/api/v1/apis?watch=true", as: admin, want: 200, conforms: true},
		func(b []byte) bool { return bytes.Contains(b, []byte("\n\n")) })
	event, _, _ := bytes.Cut(w.body, []byte("\n\n"))
	if i := bytes.Index(event, []byte("data: ")); !bytes.HasPrefix(event, []byte("event: update\n")) || i < 0 {
		t.Errorf("watch APIs: first event %q", event)
	} else {
		h.validateSchema("watch APIs", "PublishedAPI", event[i+6:])
	}

	plan := func(name string, spec map[string]any) map[string]any {
		return map[string]any{"metadata": map[string]any{"name": name}, "spec": spec}
	}
	h.do(call{label: "plan naming an unknown API", method: "POST", path: "/api/v1/plans", as: admin, want: 400, conforms: true,
		body: plan("gold", map[string]any{"apis": []string{"ghost"}, "auth": "oauth"})})
	h.do(call{label: "plan with an unknown auth", method: "POST", path: "/api/v1/plans", as: admin, want: 400, rejects: true,
		body: plan("gold", map[string]any{"apis": []string{"hello"}, "auth": "magic"})})
	h.do(call{method: "POST", path: "/api/v1/plans", as: admin, want: 201, conforms: true,
		body: plan("gold", map[string]any{"apis": []string{"hello"}, "auth": "client-id", "clientSecret": true, "rateLimit": "100/1m", "approval": true})})
	h.do(call{method: "GET", path: "/api/v1/plans", as: viewer, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/plans/gold", as: viewer, want: 200, conforms: true})
	h.do(call{method: "PUT", path: "/api/v1/plans/free", as: admin, want: 201, conforms: true,
		body: plan("free", map[string]any{"apis": []string{"hello"}, "auth": "none"})})
	h.do(call{label: "delete an API in a plan", method: "DELETE", path: "/api/v1/apis/hello", as: admin, want: 409, conforms: true})
	// The API serves the BAR file's flows: deleting the BAR file is refused,
	// naming the API, with or without force (which overrides runtimes' use only).
	for _, q := range []string{"", "?force=true"} {
		inUse := h.do(call{label: "delete a BAR file a published API uses" + q, method: "DELETE", path: "/api/v1/bar-files/hello" + q, as: admin, want: 409, conforms: true})
		if !strings.Contains(string(inUse.body), "published API(s) hello") {
			t.Errorf("the refusal does not name the API: %s", inUse.body)
		}
	}
	h.do(call{method: "GET", path: "/api/v1/bar-files/hello", as: admin, want: 200, conforms: true})

	sub := map[string]any{"spec": map[string]any{"plan": "silver", "app": "sandbox/acme/shop"}}
	h.do(call{label: "subscription to a missing plan", method: "PUT", path: "/api/v1/subscriptions/s1", as: admin, body: sub, want: 400, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/subscriptions", as: viewer, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/subscriptions/s1", as: viewer, want: 404, conforms: true})
	h.do(call{method: "POST", path: "/api/v1/subscriptions/s1/approve", as: admin, want: 404, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/subscriptions/s1", as: admin, want: 404, conforms: true})
	h.do(call{label: "subscription of a missing app", method: "PUT", path: "/api/v1/subscriptions/s1", as: admin, want: 400, conforms: true,
		body: map[string]any{"spec": map[string]any{"plan": "gold", "app": "sandbox/nobody/shop"}}})
	h.do(call{method: "POST", path: "/api/v1/catalogs/sandbox/consumer-orgs", as: admin, want: 201, conforms: true, body: map[string]any{"metadata": map[string]any{"name": "subs"}}})
	h.do(call{method: "POST", path: "/api/v1/catalogs/sandbox/consumer-orgs/subs/apps", as: admin, want: 201, conforms: true, body: map[string]any{"metadata": map[string]any{"name": "shop"}}})
	s1 := decode[map[string]any](t, h.do(call{method: "POST", path: "/api/v1/subscriptions", as: admin, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "s1"}, "spec": map[string]any{"plan": "gold", "app": "sandbox/subs/shop"}}}))
	if st, _ := s1["status"].(map[string]any); st["state"] != "pending" {
		t.Errorf("a subscription to a plan with approval: %v", s1)
	}
	h.do(call{label: "viewer approves", method: "POST", path: "/api/v1/subscriptions/s1/approve", as: viewer, want: 403, conforms: true})
	h.do(call{method: "POST", path: "/api/v1/subscriptions/s1/approve", as: admin, want: 200, conforms: true})
	h.do(call{method: "PUT", path: "/api/v1/subscriptions/s1", as: admin, want: 200, conforms: true, body: map[string]any{"spec": map[string]any{"plan": "gold", "app": "sandbox/subs/shop"}}})
	h.do(call{method: "GET", path: "/api/v1/subscriptions/s1", as: viewer, want: 200, conforms: true})
	h.do(call{label: "delete a plan with subscriptions", method: "DELETE", path: "/api/v1/plans/gold", as: admin, want: 409, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/subscriptions/s1", as: admin, want: 204, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/catalogs/sandbox/consumer-orgs/subs?force=true", as: admin, want: 204, conforms: true})

	h.do(call{label: "basic credential of a missing runtime", method: "POST", path: "/api/v1/integration-runtimes/none/basic-auth", as: admin, want: 404, conforms: true})
	h.do(call{label: "viewer generates a basic credential", method: "POST", path: "/api/v1/integration-runtimes/web/basic-auth", as: viewer, want: 403, conforms: true})
	rt := map[string]any{"spec": map[string]any{"barURL": []string{barURL}, "replicas": 0, "forceFlowBasicAuth": map[string]any{"enabled": true}}}
	h.do(call{method: "PUT", path: "/api/v1/integration-runtimes/basic", as: admin, body: rt, want: 201, conforms: true})
	ba := decode[map[string]string](t, h.do(call{method: "POST", path: "/api/v1/integration-runtimes/basic/basic-auth", as: admin, want: 200, conforms: true}))
	// The password has the format of every issued secret (prefix, CRC32
	// checksum), so the README's secret-scanning expression finds it.
	if ba["username"] == "" || !secret.WellFormed(ba["password"], "slfb_") || !iam.SecretPattern.MatchString("x "+ba["password"]+" y") {
		t.Errorf("basic credential = %v", ba)
	}
	h.do(call{method: "DELETE", path: "/api/v1/integration-runtimes/basic", as: admin, want: 204, conforms: true})

	for _, p := range []string{"gold", "free"} {
		h.do(call{method: "DELETE", path: "/api/v1/plans/" + p, as: admin, want: 204, conforms: true})
	}
	h.do(call{method: "DELETE", path: "/api/v1/apis/hello", as: admin, want: 204, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/apis/hello", as: admin, want: 404, conforms: true})
	var list map[string][]any
	_ = json.Unmarshal(h.do(call{method: "GET", path: "/api/v1/apis", as: admin, want: 200, conforms: true}).body, &list)
	if len(list["apis"]) != 0 {
		t.Errorf("APIs left: %v", list)
	}
}
