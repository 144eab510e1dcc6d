package runtime

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/gateway"
)

const gwSecret = "slas_gatewaytestsecretgatewaytestsecre0000"

// TestGatewayEnforcedOnPublishedFlows runs a runtime whose gateway
// protects one flow with a client-id plan: refusals come from the gateway
// before the flow runs, a caller that passes reaches the flow as `.app`,
// a flow of no API stays open, and the user trace shows the app but not
// the secret.
func TestGatewayEnforcedOnPublishedFlows(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"sluice.yaml":     "name: shop\nversion: 1.0.0\n",
		"flows/echo.yaml": "flow: echo\ntrigger:\n  http: {method: GET, path: /shop/echo}\nsteps:\n  - map: '{app: .app}'\n",
		"flows/open.yaml": "flow: open\ntrigger:\n  http: {method: GET, path: /open}\nsteps:\n  - map: '{app: .app}'\n",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clk := clocktest.New(0)
	gw := gateway.New(clk.Now)
	err := gw.Apply(gateway.State{
		APIs: []gateway.API{{ID: "a1", Name: "shop", Flows: []string{"shop/echo"},
			Plans: []gateway.Plan{{ID: "p1", Name: "gold", Auth: gateway.AuthClientID, RateLimit: gateway.Limit{Requests: 2, Window: gateway.Duration(time.Minute)}}}}},
		Apps:          []gateway.App{{ID: "app1", Name: "shop-app", ConsumerOrgName: "acme", CatalogName: "sandbox", Enabled: true}},
		Credentials:   []gateway.Credential{{ClientID: "cid", SecretHash: gateway.HashSecret(gwSecret), AppID: "app1"}},
		Subscriptions: []gateway.Subscription{{AppID: "app1", PlanID: "p1", Active: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rt := loadedRuntimeWith(t, Options{Gateway: gw}, dir)
	rt.trace.user.start(clk.Now())
	call := func(path string, headers ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			r.Header.Set(headers[i], headers[i+1])
		}
		w := httptest.NewRecorder()
		rt.router.ServeHTTP(w, r)
		return w
	}
	if w := call("/shop/echo"); w.Code != 401 || w.Header().Get("WWW-Authenticate") == "" || !strings.Contains(w.Body.String(), `"code":401`) {
		t.Errorf("no credentials: %d %v %s", w.Code, w.Header(), w.Body)
	}
	w := call("/shop/echo", "X-IBM-Client-Id", "cid", "X-IBM-Client-Secret", gwSecret)
	var body struct{ App map[string]any }
	if err := json.Unmarshal(w.Body.Bytes(), &body); w.Code != 200 || err != nil || body.App["name"] != "shop-app" ||
		body.App["plan"].(map[string]any)["name"] != "gold" || body.App["consumerOrg"].(map[string]any)["name"] != "acme" {
		t.Fatalf("passing caller: %d %s", w.Code, w.Body)
	}
	if w := call("/open"); w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"app":null}` {
		t.Errorf("open flow: %d %s", w.Code, w.Body)
	}
	call("/shop/echo", "X-IBM-Client-Id", "cid")
	if w := call("/shop/echo", "X-IBM-Client-Id", "cid"); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("over the plan's limit: %d %v", w.Code, w.Header())
	}
	var trace strings.Builder
	for _, ev := range rt.trace.user.snapshot() {
		trace.Write(ev.line)
	}
	if !strings.Contains(trace.String(), `"shop-app"`) {
		t.Errorf("the user trace does not show the app: %s", trace.String())
	}
	if strings.Contains(trace.String(), gwSecret) {
		t.Errorf("the user trace holds the client secret: %s", trace.String())
	}
}
