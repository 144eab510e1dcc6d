package apis_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/apis"
	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/barstore"
	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

type env struct {
	st    store.Store
	svc   *apis.Service
	bars  *barstore.Service
	apps  *apps.Service
	dev   iam.Principal
	admin iam.Principal
}

func newEnv(t *testing.T, kind string) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, storetest.DSN(t, kind), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clocktest.New(0)
	mk, _ := secret.NewMasterKey()
	kr, err := secret.OpenKeyring(ctx, st, mk)
	if err != nil {
		t.Fatal(err)
	}
	aud := iam.NewAuditor(st)
	t.Cleanup(aud.Close)
	tokens := &iam.Tokens{Store: st, Keyring: kr, Issuer: "http://sluice.test", Audience: "sluice", Lifetime: time.Hour, Now: clk.Now}
	if err := tokens.Init(ctx); err != nil {
		t.Fatal(err)
	}
	is := &iam.Service{Store: st, Tokens: tokens, Audit: aud, Now: clk.Now}
	creds, err := is.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	as := &apps.Service{Store: st, IAM: is, Now: clk.Now}
	dir := apis.AppsDirectory{Apps: as}
	e := &env{st: st, apps: as, svc: &apis.Service{Store: st, IAM: is, Now: clk.Now, Apps: dir, Credentials: dir},
		bars: &barstore.Service{Store: st, IAM: is, TempDir: t.TempDir(), Now: clk.Now}}
	e.dev = iam.Principal{InstanceID: creds.InstanceID, SubjectKind: store.KindUser, SubjectName: "dev", Role: iam.RoleDeveloper}
	e.admin = iam.Principal{InstanceID: creds.InstanceID, SubjectKind: store.KindUser, SubjectName: "admin", Role: iam.RoleAdmin}
	return e
}

// upload builds the project in dir and stores it as BAR file name.
func (e *env) upload(t *testing.T, name, dir string) {
	t.Helper()
	data, _, err := bar.Build(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.bars.Put(context.Background(), e.dev, name, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

// project writes a project with the given files into a temporary directory.
func project(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func kind(err error) iam.Kind { return iam.KindOf(err) }

func TestAPIFromTheBARsDocument(t *testing.T) {
	for _, k := range storetest.Kinds() {
		t.Run(k, func(t *testing.T) {
			e := newEnv(t, k)
			ctx := context.Background()
			e.upload(t, "orders", "../../examples/orders")
			a, created, err := e.svc.PutAPI(ctx, e.dev, "orders", apis.APISpec{Version: "1.2.0", BasePath: "/orders/", BARFile: "orders"}, true)
			if err != nil || !created {
				t.Fatalf("put = %v, %v", created, err)
			}
			if a.Spec.BasePath != "/orders" || a.Status.DocumentSource != "orders:openapi/orders.yaml" || a.Status.OpenAPIVersion != "3.1.0" {
				t.Errorf("api = %+v", a)
			}
			var flows []string
			for _, f := range a.Status.Flows {
				flows = append(flows, f.Project+"/"+f.Name+" "+f.Method+" "+f.Path)
			}
			if got := strings.Join(flows, ", "); got != "orders/create-order POST /orders/{customer}, orders/get-order GET /orders/{customer}/{id}" {
				t.Errorf("flows = %s", got)
			}
			_, doc, err := e.svc.Document(ctx, e.dev, a.ID) // by id as well as by name
			if err != nil {
				t.Fatal(err)
			}
			var d map[string]any
			if err := json.Unmarshal(doc, &d); err != nil {
				t.Fatal(err)
			}
			if d["openapi"] != "3.1.0" || strings.Contains(string(doc), "../schemas/") || !strings.Contains(string(doc), `"#/components/schemas/schemas_order"`) {
				t.Errorf("the served document still points into the BAR or lost the schema: %s", doc)
			}
			if _, _, err := e.svc.PutAPI(ctx, e.dev, "orders", apis.APISpec{Version: "1", BARFile: "orders"}, true); kind(err) != iam.KindConflict {
				t.Errorf("create of an existing name: %v", err)
			}
			if list, err := e.svc.ListAPIs(ctx, e.dev, iam.ListRequest{}); err != nil || len(list.Items) != 1 || list.Items[0].ID != a.ID {
				t.Errorf("list = %+v, %v", list, err)
			}
		})
	}
}

func TestGeneratedDocument(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	dir := project(t, map[string]string{
		"sluice.yaml":        "name: shop\nversion: 0.1.0\n",
		"schemas/order.json": `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["sku"],"properties":{"sku":{"type":"string"},"note":{"type":["string","null"]}}}`,
		"flows/put.yaml": "flow: put-order\ndescription: Stores an order.\ntrigger:\n  http: {method: PUT, path: \"/shop/orders/{id}\"}\nsteps:\n" +
			"  - validate: schemas/order.json\n  - switch:\n      - when: .body.sku == \"x\"\n        steps:\n          - fail: {status: 409, message: taken}\n" +
			"  - reply: {status: 201}\n",
		"flows/get.yaml":   "flow: get-order\ntrigger:\n  http: {method: GET, path: \"/shop/orders/{id}\"}\nsteps:\n  - map: .params\n",
		"flows/other.yaml": "flow: other\ntrigger:\n  http: {method: GET, path: /elsewhere}\nsteps:\n  - map: '{}'\n",
	})
	e.upload(t, "shop", dir)
	if _, _, err := e.svc.PutAPI(ctx, e.dev, "shop", apis.APISpec{Version: "0.1.0", BasePath: "/shop", BARFile: "shop"}, false); kind(err) != iam.KindInvalid ||
		!strings.Contains(err.Error(), "flow other serves /elsewhere") {
		t.Errorf("a flow outside the base path: %v", err)
	}
	a, _, err := e.svc.PutAPI(ctx, e.dev, "shop", apis.APISpec{Title: "Shop", Version: "0.1.0", BasePath: "/shop", BARFile: "shop",
		Flows: []string{"put-order", "get-order"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status.DocumentSource != "generated" || a.Status.OpenAPIVersion != "3.0.3" {
		t.Errorf("status = %+v", a.Status)
	}
	_, doc, _ := e.svc.Document(ctx, e.dev, "shop")
	var d struct {
		Info    map[string]string
		Servers []map[string]string
		Paths   map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []map[string]any
			RequestBody struct {
				Content map[string]struct{ Schema map[string]any }
			} `json:"requestBody"`
			Responses map[string]any
		}
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	put := d.Paths["/orders/{id}"]["put"]
	if d.Info["title"] != "Shop" || d.Servers[0]["url"] != "/shop" || put.OperationID != "put-order" || len(put.Parameters) != 1 || put.Parameters[0]["name"] != "id" {
		t.Fatalf("document = %s", doc)
	}
	sch := put.RequestBody.Content["application/json"].Schema
	if sch["required"] == nil || sch["$schema"] != nil {
		t.Errorf("request schema = %v", sch)
	}
	var statuses []string
	for st := range put.Responses {
		statuses = append(statuses, st)
	}
	if got := strings.Join(sorted(statuses), ","); got != "201,400,409,500" {
		t.Errorf("put-order statuses = %s", got)
	}
	if _, ok := d.Paths["/orders/{id}"]["get"].Responses["200"]; !ok {
		t.Errorf("get-order has no 200: %s", doc)
	}
	if _, _, err := e.svc.PutAPI(ctx, e.dev, "shop2", apis.APISpec{Version: "1", BARFile: "shop", Flows: []string{"nope"}}, false); kind(err) != iam.KindInvalid ||
		!strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown flow: %v", err)
	}
}

func sorted(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestBadAPIsChangeNothing(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	e.upload(t, "bad", project(t, map[string]string{
		"sluice.yaml":       "name: bad\nversion: 1.0.0\n",
		"flows/f.yaml":      "flow: f\ntrigger:\n  http: {method: GET, path: /f}\nsteps:\n  - map: '{}'\n",
		"openapi/bad.yaml":  "openapi: 3.0.3\ninfo: {title: bad}\npaths: {}\n", // no info.version
		"openapi/good.yaml": "openapi: 3.0.3\ninfo: {title: good, version: '1'}\npaths: {}\n",
	}))
	for name, spec := range map[string]apis.APISpec{
		"document that does not validate": {Version: "1", BARFile: "bad", Document: "bad.yaml"},
		"unknown document":                {Version: "1", BARFile: "bad", Document: "none.yaml"},
		"unknown BAR":                     {Version: "1", BARFile: "ghost"},
		"unknown runtime":                 {Version: "1", Runtime: "ghost"},
		"no version":                      {BARFile: "bad"},
		"no source":                       {Version: "1"},
		"base path with a wildcard":       {Version: "1", BARFile: "bad", BasePath: "/{x}"},
	} {
		if _, _, err := e.svc.PutAPI(ctx, e.dev, "a", spec, false); err == nil || kind(err) != iam.KindInvalid {
			t.Errorf("%s: %v, want invalid", name, err)
		} else if name == "document that does not validate" && !strings.Contains(err.Error(), "openapi/bad.yaml of BAR file bad") {
			t.Errorf("%s: %v does not name the file", name, err)
		}
	}
	if list, _ := e.svc.ListAPIs(ctx, e.dev, iam.ListRequest{}); len(list.Items) != 0 {
		t.Errorf("refused APIs were stored: %+v", list)
	}
	if a, _, err := e.svc.PutAPI(ctx, e.dev, "a", apis.APISpec{Version: "1", BARFile: "bad", Document: "good.yaml"}, false); err != nil ||
		a.Status.DocumentSource != "bad:openapi/good.yaml" {
		t.Errorf("the good document of the same BAR: %+v, %v", a.Status, err)
	}
}

func TestPlansAndSubscriptions(t *testing.T) {
	for _, k := range storetest.Kinds() {
		t.Run(k, func(t *testing.T) {
			e := newEnv(t, k)
			ctx := context.Background()
			e.upload(t, "orders", "../../examples/orders")
			if _, _, err := e.svc.PutAPI(ctx, e.dev, "orders", apis.APISpec{Version: "1.2.0", BARFile: "orders"}, false); err != nil {
				t.Fatal(err)
			}
			for name, spec := range map[string]apis.PlanSpec{
				"unknown API":       {APIs: []string{"ghost"}, Auth: "oauth"},
				"no API":            {Auth: "oauth"},
				"unknown auth":      {APIs: []string{"orders"}, Auth: "magic"},
				"bad rate limit":    {APIs: []string{"orders"}, Auth: "oauth", RateLimit: "lots"},
				"secret with oauth": {APIs: []string{"orders"}, Auth: "oauth", ClientSecret: true},
			} {
				if _, _, err := e.svc.PutPlan(ctx, e.dev, "p", spec, false); kind(err) != iam.KindInvalid {
					t.Errorf("plan with %s: %v", name, err)
				} else if name == "unknown API" && !strings.Contains(err.Error(), "API ghost") {
					t.Errorf("%s: %v", name, err)
				}
			}
			gold, _, err := e.svc.PutPlan(ctx, e.dev, "gold", apis.PlanSpec{APIs: []string{"orders"}, Auth: "client-id", RateLimit: "100/1m", Approval: true}, false)
			if err != nil || gold.Limit.Requests != 100 || gold.Limit.Window != time.Minute {
				t.Fatalf("gold = %+v, %v", gold, err)
			}
			if _, _, err := e.svc.PutSubscription(ctx, e.dev, "s1", apis.SubscriptionSpec{Plan: "silver", App: "sandbox/acme/shop"}, false); kind(err) != iam.KindInvalid ||
				!strings.Contains(err.Error(), "plan silver") {
				t.Errorf("subscription to a missing plan: %v", err)
			}
			if _, err := e.apps.CreateConsumerOrg(ctx, e.dev, "sandbox", apps.Input{Name: "acme"}); err != nil {
				t.Fatal(err)
			}
			shop, err := e.apps.CreateApp(ctx, e.dev, apps.Path{Catalog: "sandbox", ConsumerOrg: "acme", App: "shop"}, apps.AppInput{Input: apps.Input{Name: "shop"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.svc.PutSubscription(ctx, e.dev, "s1", apis.SubscriptionSpec{Plan: "gold", App: "sandbox/acme/nobody"}, false); kind(err) != iam.KindInvalid {
				t.Errorf("subscription of a missing app: %v", err)
			}
			sub, _, err := e.svc.PutSubscription(ctx, e.dev, "s1", apis.SubscriptionSpec{Plan: gold.ID, App: "sandbox/acme/shop"}, false)
			if err != nil || sub.Status.State != apis.StatePending || sub.Spec.Plan != "gold" || sub.Status.AppID != shop.App.ID {
				t.Fatalf("subscription = %+v, %v", sub, err)
			}
			if sub, err = e.svc.ApproveSubscription(ctx, e.admin, "s1"); err != nil || sub.Status.State != apis.StateActive || sub.Status.ApprovedBy != "user:admin" {
				t.Fatalf("approved = %+v, %v", sub.Status, err)
			}
			// Replacing with the same plan and app keeps the approval.
			if sub, _, err = e.svc.PutSubscription(ctx, e.dev, "s1", apis.SubscriptionSpec{Plan: "gold", App: "sandbox/acme/shop"}, false); err != nil || sub.Status.State != apis.StateActive {
				t.Errorf("replaced = %+v, %v", sub.Status, err)
			}
			if err := e.svc.DeleteAPI(ctx, e.dev, "orders"); kind(err) != iam.KindConflict || !strings.Contains(err.Error(), "gold") {
				t.Errorf("deleting an API in a plan: %v", err)
			}
			if err := e.svc.DeletePlan(ctx, e.dev, "gold", false); kind(err) != iam.KindConflict {
				t.Errorf("deleting a plan with subscriptions: %v", err)
			}
			if err := e.svc.DeletePlan(ctx, e.dev, "gold", true); err != nil {
				t.Fatal(err)
			}
			if subs, _ := e.svc.ListSubscriptions(ctx, e.dev, iam.ListRequest{}); len(subs.Items) != 0 {
				t.Errorf("subscriptions survived their plan: %+v", subs)
			}
			if err := e.svc.DeleteAPI(ctx, e.dev, "orders"); err != nil {
				t.Errorf("deleting the API then: %v", err)
			}
		})
	}
}
