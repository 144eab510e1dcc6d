package conformance

import (
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// appsCalls drives the consumer-apps operations (catalogs, consumer orgs,
// apps, credentials, leases) to success and through their refusals.
func appsCalls(t *testing.T, h *harness, admin, viewer *servertest.Client) {
	const base = "/api/v1/catalogs"
	cats := decode[struct{ Catalogs []object }](t, h.do(call{method: "GET", path: base, as: viewer, want: 200, conforms: true}))
	if len(cats.Catalogs) != 1 || cats.Catalogs[0].Metadata.Name != "sandbox" {
		t.Errorf("catalogs of a new instance = %+v, want the sandbox", cats.Catalogs)
	}
	h.do(call{label: "viewer creates a catalog", method: "POST", path: base, as: viewer, want: 403, conforms: true, body: map[string]any{"metadata": map[string]any{"name": "x"}}})
	h.do(call{label: "catalog with a bad name", method: "POST", path: base, as: admin, want: 400, rejects: true, body: map[string]any{"metadata": map[string]any{"name": "no good"}}})
	h.do(call{label: "catalog with an unknown field", method: "POST", path: base, as: admin, want: 400, rejects: true, body: map[string]any{"spec": map[string]any{"title": "x", "colour": "red"}}})
	prod := decode[object](t, h.do(call{label: "catalog from a title", method: "POST", path: base, as: admin, want: 201, conforms: true,
		body: map[string]any{"spec": map[string]any{"title": "Production"}}}))
	if prod.Metadata.Name != "production" {
		t.Errorf("catalog name from title Production = %q", prod.Metadata.Name)
	}
	h.do(call{label: "taken catalog name", method: "POST", path: base, as: admin, want: 409, conforms: true, body: map[string]any{"metadata": map[string]any{"name": "production"}}})
	h.do(call{label: "catalog by id", method: "GET", path: base + "/" + prod.Metadata.ID, as: viewer, want: 200, conforms: true})
	h.do(call{method: "GET", path: base + "/nothing", as: viewer, want: 404, conforms: true})
	h.do(call{method: "PUT", path: base + "/production", as: admin, want: 200, conforms: true, body: map[string]any{"spec": map[string]any{"title": "Prod", "summary": "live"}}})
	h.do(call{label: "rename a catalog", method: "PUT", path: base + "/production", as: admin, want: 400, conforms: true, body: map[string]any{"metadata": map[string]any{"name": "other"}}})
	// PUT creates or replaces.
	h.do(call{label: "PUT of a new catalog", method: "PUT", path: base + "/staging", as: admin, want: 201, conforms: true, body: map[string]any{"spec": map[string]any{"title": "Staging"}}})
	h.do(call{label: "PUT of it again", method: "PUT", path: base + "/staging", as: admin, want: 200, conforms: true, body: map[string]any{"spec": map[string]any{"title": "Staging 2"}}})
	h.do(call{label: "PUT of a new catalog with a bad name", method: "PUT", path: base + "/Bad%20Name", as: admin, want: 400, conforms: true, body: map[string]any{"spec": map[string]any{}}})
	h.do(call{label: "PUT of a new catalog by a viewer", method: "PUT", path: base + "/viewers", as: viewer, want: 403, conforms: true, body: map[string]any{"spec": map[string]any{}}})
	h.do(call{label: "nothing made by the refused PUTs", method: "GET", path: base + "/viewers", as: viewer, want: 404, conforms: true})
	h.do(call{label: "PUT of a consumer org in a missing catalog", method: "PUT", path: base + "/nothing/consumer-orgs/x", as: admin, want: 404, conforms: true, body: map[string]any{"spec": map[string]any{}}})
	h.do(call{label: "PUT of a new consumer org", method: "PUT", path: base + "/staging/consumer-orgs/beta", as: admin, want: 201, conforms: true, body: map[string]any{"spec": map[string]any{}}})
	h.do(call{label: "PUT of a new app", method: "PUT", path: base + "/staging/consumer-orgs/beta/apps/tester", as: admin, want: 201, conforms: true, body: map[string]any{"spec": map[string]any{"state": "disabled"}}})
	h.do(call{label: "PUT of the app again", method: "PUT", path: base + "/staging/consumer-orgs/beta/apps/tester", as: admin, want: 200, conforms: true, body: map[string]any{"spec": map[string]any{"title": "Tester"}}})
	h.do(call{label: "staging goes", method: "DELETE", path: base + "/staging?force=true", as: admin, want: 204, conforms: true})

	corgs := base + "/sandbox/consumer-orgs"
	h.do(call{method: "POST", path: corgs, as: admin, want: 201, conforms: true, body: map[string]any{"metadata": map[string]any{"name": "acme"}}})
	h.do(call{method: "GET", path: corgs, as: viewer, want: 200, conforms: true})
	h.do(call{method: "GET", path: corgs + "/acme", as: viewer, want: 200, conforms: true})
	h.do(call{method: "PUT", path: corgs + "/acme", as: admin, want: 200, conforms: true, body: map[string]any{"spec": map[string]any{"title": "ACME Corp"}}})
	appsURL := corgs + "/acme/apps"
	h.do(call{label: "app with a bad policy", method: "POST", path: appsURL, as: admin, want: 400, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "shop"}, "spec": map[string]any{"credentialPolicy": map[string]any{"defaultTtl": "2h", "maxTtl": "1h"}}}})
	shop := decode[object](t, h.do(call{method: "POST", path: appsURL, as: admin, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "shop"}, "spec": map[string]any{"title": "Shop", "credentialPolicy": map[string]any{"defaultTtl": "1h", "maxTtl": "2h"}}}}))
	h.do(call{method: "GET", path: appsURL, as: viewer, want: 200, conforms: true})
	app := appsURL + "/" + shop.Metadata.ID
	h.do(call{label: "app by id", method: "GET", path: app, as: viewer, want: 200, conforms: true})
	h.do(call{method: "PUT", path: app, as: admin, want: 200, conforms: true, body: map[string]any{"spec": map[string]any{"title": "Shop", "state": "enabled"}}})
	h.do(call{label: "app with an unknown state", method: "PUT", path: app, as: admin, want: 400, rejects: true, body: map[string]any{"spec": map[string]any{"state": "paused"}}})

	cr := decode[object](t, h.do(call{method: "POST", path: app + "/credentials", as: admin, want: 201, conforms: true, body: map[string]any{"spec": map[string]any{"title": "mobile"}}}))
	if !strings.HasPrefix(cr.ClientSecret, "slas_") {
		t.Errorf("app credential secret %q", cr.ClientSecret)
	}
	h.do(call{method: "GET", path: app + "/credentials", as: viewer, want: 200, conforms: true})
	h.do(call{method: "GET", path: app + "/credentials/mobile", as: viewer, want: 200, conforms: true})
	h.do(call{label: "viewer deletes a credential", method: "DELETE", path: app + "/credentials/mobile", as: viewer, want: 403, conforms: true})
	h.do(call{label: "app delete refused with a credential", method: "DELETE", path: app, as: admin, want: 409, conforms: true})

	lease := decode[object](t, h.do(call{method: "POST", path: app + "/leases", as: admin, want: 201, conforms: true, body: map[string]any{"ttl": "30m"}}))
	h.do(call{label: "lease above maxTtl", method: "POST", path: app + "/leases", as: admin, want: 400, conforms: true, body: map[string]any{"ttl": "3h"}})
	h.do(call{label: "lease with a broken ttl", method: "POST", path: app + "/leases", as: admin, want: 400, rejects: true, body: map[string]any{"ttl": "soon"}})
	h.do(call{method: "GET", path: app + "/leases", as: viewer, want: 200, conforms: true})
	h.do(call{method: "GET", path: app + "/leases/" + lease.Metadata.ID, as: viewer, want: 200, conforms: true})
	h.do(call{label: "a permanent credential as a lease", method: "GET", path: app + "/leases/mobile", as: viewer, want: 404, conforms: true})
	rn := decode[map[string]any](t, h.do(call{label: "renew past the cap", method: "POST", path: app + "/leases/" + lease.Metadata.ID + "/renew", as: admin, want: 200, conforms: true,
		body: map[string]any{"increment": "2h"}}))
	if rn["capped"] != true {
		t.Errorf("a renewal to now+2h with maxTtl 2h is not capped: %v", rn)
	}
	h.do(call{label: "renew above maxTtl", method: "POST", path: app + "/leases/" + lease.Metadata.ID + "/renew", as: admin, want: 400, conforms: true, body: map[string]any{"increment": "5h"}})
	h.do(call{method: "DELETE", path: app + "/leases/" + lease.Metadata.ID, as: admin, want: 204, conforms: true})
	h.do(call{method: "POST", path: app + "/leases", as: admin, want: 201, conforms: true, body: map[string]any{}})
	all := decode[map[string]int](t, h.do(call{method: "DELETE", path: app + "/leases", as: admin, want: 200, conforms: true}))
	if all["revoked"] != 1 {
		t.Errorf("revoke all = %v", all)
	}
	h.do(call{method: "DELETE", path: app + "/credentials/" + cr.Metadata.ID, as: admin, want: 204, conforms: true})
	h.do(call{method: "DELETE", path: app, as: admin, want: 204, conforms: true})
	h.do(call{label: "catalog delete refused with a consumer org", method: "DELETE", path: base + "/sandbox", as: admin, want: 409, conforms: true})
	h.do(call{label: "consumer org delete with force", method: "DELETE", path: corgs + "/acme?force=true", as: admin, want: 204, conforms: true})
	h.do(call{method: "DELETE", path: base + "/production?force=yes", as: admin, want: 400, rejects: true})
	h.do(call{method: "DELETE", path: base + "/production", as: admin, want: 204, conforms: true})
}
