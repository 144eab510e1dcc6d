package apis_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/sluice-dev/sluice/internal/apis"
	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// TestGatewayStateFromRealApps compiles a runtime's gateway state with
// package apps behind the subscriptions, and feeds it to a gateway: the
// credential apps issued passes, and revoking it, disabling the app or
// unsubscribing is seen in the next state.
func TestGatewayStateFromRealApps(t *testing.T) {
	for _, k := range storetest.Kinds() {
		t.Run(k, func(t *testing.T) {
			e := newEnv(t, k)
			ctx := context.Background()
			as := e.apps
			e.upload(t, "orders", "../../examples/orders")
			rec, _, err := e.st.PutRuntime(ctx, store.Runtime{InstanceID: e.dev.InstanceID, Name: "shop", UID: "ir-test", Spec: `{"barURL":["http://cp/api/v1/bar-files/orders/content"],"configurations":[]}`,
				FetchTokenHash: "x", CreatedBy: "user:dev", UpdatedBy: "user:dev"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.svc.PutAPI(ctx, e.dev, "orders", apis.APISpec{Version: "1.2.0", BasePath: "/orders", BARFile: "orders"}, false); err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.svc.PutPlan(ctx, e.dev, "gold", apis.PlanSpec{APIs: []string{"orders"}, Auth: "client-id", ClientSecret: true, RateLimit: "10/1m"}, false); err != nil {
				t.Fatal(err)
			}
			if _, err := as.CreateConsumerOrg(ctx, e.dev, "sandbox", apps.Input{Name: "acme"}); err != nil {
				t.Fatal(err)
			}
			path := apps.Path{Catalog: "sandbox", ConsumerOrg: "acme", App: "shop"}
			if _, err := as.CreateApp(ctx, e.dev, path, apps.AppInput{Input: apps.Input{Name: "shop"}}); err != nil {
				t.Fatal(err)
			}
			_, issued, err := as.CreateCredential(ctx, e.dev, path, apps.CredentialInput{})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.svc.PutSubscription(ctx, e.dev, "s1", apis.SubscriptionSpec{Plan: "gold", App: "sandbox/acme/shop"}, false); err != nil {
				t.Fatal(err)
			}
			gw := gateway.New(clocktest.New(0).Now)
			check := func() string {
				t.Helper()
				st, err := e.svc.GatewayState(ctx, rec)
				if err != nil {
					t.Fatal(err)
				}
				if err := gw.Apply(st); err != nil {
					t.Fatal(err)
				}
				r := httptest.NewRequest("POST", "/orders/acme", nil)
				r.Header.Set("X-IBM-Client-Id", issued.Credential.ClientID)
				r.Header.Set("X-IBM-Client-Secret", issued.Secret.Reveal())
				c, ref := gw.Check("orders/create-order", r)
				switch {
				case ref != nil:
					return ref.Message
				case c == nil:
					return "anonymous"
				}
				return c.AppName + "/" + c.ConsumerOrgName + "/" + c.CatalogName + " " + c.PlanName
			}
			if got := check(); got != "shop/acme/sandbox gold" {
				t.Fatalf("subscribed app: %s", got)
			}
			st, _ := e.svc.GatewayState(ctx, rec)
			tag := gateway.Tag(st)
			if _, err := as.UpdateApp(ctx, e.dev, path, apps.AppInput{State: apps.StateDisabled}); err != nil {
				t.Fatal(err)
			}
			if got := check(); got != "app shop is disabled" {
				t.Errorf("disabled app: %s", got)
			}
			if st, _ := e.svc.GatewayState(ctx, rec); gateway.Tag(st) == tag {
				t.Error("disabling the app did not change the state's tag")
			}
			if _, err := as.UpdateApp(ctx, e.dev, path, apps.AppInput{State: apps.StateEnabled}); err != nil {
				t.Fatal(err)
			}
			if err := as.DeleteCredential(ctx, e.dev, path, issued.Credential.ID); err != nil {
				t.Fatal(err)
			}
			if got := check(); got != "X-IBM-Client-Id names no valid app credential" {
				t.Errorf("revoked credential: %s", got)
			}
			// A runtime that does not run the API's BAR enforces nothing of it.
			other, _, _ := e.st.PutRuntime(ctx, store.Runtime{InstanceID: e.dev.InstanceID, Name: "other", UID: "ir-other", Spec: `{"barURL":["http://cp/api/v1/bar-files/hello/content"],"configurations":[]}`,
				FetchTokenHash: "x", CreatedBy: "user:dev", UpdatedBy: "user:dev"}, nil)
			if st, err := e.svc.GatewayState(ctx, other); err != nil || len(st.APIs) != 0 || len(st.Subscriptions) != 0 {
				t.Errorf("state of a runtime without the API: %+v, %v", st, err)
			}
		})
	}
}
