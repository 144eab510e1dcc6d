package conformance

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// apicDiscovery publishes examples/orders through /api/v1 and reads it
// back in API Connect's discovery shape (h validates against apic.yaml).
func (h *harness) apicDiscovery(srv *servertest.Server, tok, org string) {
	t := h.t
	admin := srv.Admin(t)
	data, _, err := bar.Build(context.Background(), "../../examples/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", srv.URL+"/api/v1/bar-files/orders", bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+admin.Token)
	req.Header.Set("X-IBM-Client-Id", admin.ClientID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("upload orders: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, b := admin.Do("PUT", "/api/v1/apis/orders", map[string]any{"spec": map[string]any{"version": "1.2.0", "barFile": "orders", "basePath": "/orders"}}); code != 201 {
		t.Fatalf("publish orders: %d %s", code, b)
	}
	if code, b := admin.Do("PUT", "/api/v1/plans/gold", map[string]any{"spec": map[string]any{"apis": []string{"orders"}, "auth": "oauth", "rateLimit": "10/1m"}}); code != 201 {
		t.Fatalf("plan: %d %s", code, b)
	}
	base := "/api/catalogs/" + org + "/sandbox"
	list := decode[struct {
		Total   int `json:"total_results"`
		Results []struct {
			ID, Name  string
			BasePaths []string `json:"base_paths"`
			Enforced  bool
			URL       string
		}
	}](t, h.do(call{label: "discover APIs", method: "GET", path: base + "/apis", header: bearer(tok), want: 200, conforms: true}))
	if list.Total != 1 || list.Results[0].Name != "orders" || list.Results[0].BasePaths[0] != "/orders" || !list.Results[0].Enforced ||
		!strings.HasSuffix(list.Results[0].URL, "/apis/"+list.Results[0].ID) {
		t.Errorf("discovered APIs = %+v", list)
	}
	id := list.Results[0].ID
	h.do(call{label: "an API by name", method: "GET", path: base + "/apis/orders", header: bearer(tok), want: 200, conforms: true})
	withDoc := h.do(call{label: "an API with its document", method: "GET", path: base + "/apis/" + id + "?fields=add(document)", header: bearer(tok), want: 200, conforms: true})
	if !strings.Contains(string(withDoc.body), `"document":{`) {
		t.Errorf("fields=add(document) left the document out: %s", withDoc.body)
	}
	h.do(call{label: "an API's document", method: "GET", path: base + "/apis/" + id + "/document", header: bearer(tok), want: 200, conforms: true})
	h.do(call{label: "an unknown API", method: "GET", path: base + "/apis/nothing", header: bearer(tok), want: 404, conforms: true})
	h.do(call{label: "APIs of an unknown catalog", method: "GET", path: "/api/catalogs/" + org + "/nowhere/apis", header: bearer(tok), want: 404, conforms: true})
	prods := h.do(call{label: "products", method: "GET", path: base + "/products", header: bearer(tok), want: 200, conforms: true})
	if !strings.Contains(string(prods.body), `"name":"gold"`) || !strings.Contains(string(prods.body), "/apis/"+id) {
		t.Errorf("products = %s", prods.body)
	}
}
