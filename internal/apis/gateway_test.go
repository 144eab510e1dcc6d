package apis_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// countingStore is the real store, counting the runtime look-ups each
// compile of a gateway state starts with.
type countingStore struct {
	store.Store
	lookups atomic.Int64
}

func (c *countingStore) RuntimeByUID(ctx context.Context, uid string) (store.Runtime, error) {
	c.lookups.Add(1)
	return c.Store.RuntimeByUID(ctx, uid)
}

// TestIdleGatewayWatchSendsNothingNew holds long polls on a runtime's
// gateway state while nothing changes: they end with the state they had
// (the API answers that 304) at the same revision, and the state is not
// compiled again for them; a change answers the waiting poll at once with
// the next revision.
func TestIdleGatewayWatchSendsNothingNew(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	cs := &countingStore{Store: e.st}
	e.svc.Store = cs
	e.upload(t, "orders", "../../examples/orders")
	if _, _, err := e.st.PutRuntime(ctx, store.Runtime{InstanceID: e.dev.InstanceID, Name: "shop", UID: "ir-idle", Spec: `{"barURL":["http://cp/api/v1/bar-files/orders/content"],"configurations":[]}`,
		FetchTokenHash: "x", CreatedBy: "user:dev", UpdatedBy: "user:dev"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.PutAPI(ctx, e.dev, "orders", apis.APISpec{Version: "1.0.0", BasePath: "/orders", BARFile: "orders"}, false); err != nil {
		t.Fatal(err)
	}
	plan := func(limit string) {
		t.Helper()
		if _, _, err := e.svc.PutPlan(ctx, e.dev, "gold", apis.PlanSpec{APIs: []string{"orders"}, Auth: "client-id", RateLimit: limit}, false); err != nil {
			t.Fatal(err)
		}
	}
	plan("10/1m")
	// A poll far longer than the waits: only a change may compile again.
	const poll = time.Hour
	first, tag, err := e.svc.WaitGatewayState(ctx, "ir-idle", "", 0, poll)
	if err != nil || first.Revision != 1 || len(first.APIs) != 1 {
		t.Fatalf("first state: revision %d, %d APIs, %v", first.Revision, len(first.APIs), err)
	}
	compiles := cs.lookups.Load()
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, got, err := e.svc.WaitGatewayState(ctx, "ir-idle", tag, 50*time.Millisecond, poll)
			if err != nil || got != tag || st.Revision != 1 {
				t.Errorf("an idle watch ended with tag %s revision %d (%v), want its own tag %s at revision 1", got, st.Revision, err, tag)
			}
		}()
	}
	wg.Wait()
	if n := cs.lookups.Load() - compiles; n != 0 {
		t.Errorf("idle watches compiled the state %d more times", n)
	}

	// A change wakes a waiting watch with the next revision.
	type answer struct {
		st  gateway.State
		tag string
		err error
	}
	woke := make(chan answer, 1)
	go func() {
		st, got, err := e.svc.WaitGatewayState(ctx, "ir-idle", tag, time.Hour, poll)
		woke <- answer{st, got, err}
	}()
	plan("20/1m")
	a := <-woke
	if a.err != nil || a.tag == tag || a.st.Revision != 2 || a.st.APIs[0].Plans[0].RateLimit.Requests != 20 {
		t.Fatalf("after a change: tag %s (was %s), revision %d, %+v, %v", a.tag, tag, a.st.Revision, a.st.APIs, a.err)
	}
	// A write that says nothing new (the same plan again) keeps the revision.
	plan("20/1m")
	if st, got, err := e.svc.WaitGatewayState(ctx, "ir-idle", a.tag, 0, poll); err != nil || got != a.tag || st.Revision != 2 {
		t.Errorf("an unchanged rewrite: tag %s revision %d %v", got, st.Revision, err)
	}
}

// stampedStore is countingStore keeping the SQLite store's write stamp.
type stampedStore struct {
	*countingStore
	store.WriteStamper
}

// TestSQLiteGatewayPollsReadOnlyAfterAWrite: on SQLite a gateway watch's
// polls compile its state again only when the store's files were written,
// so an idle control plane reads nothing however often they tick; a write
// by another process (a second store on the same file, whose change feed
// this one never hears) is found at the next tick.
func TestSQLiteGatewayPollsReadOnlyAfterAWrite(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	cs := &stampedStore{&countingStore{Store: e.st}, e.st.(store.WriteStamper)}
	e.svc.Store = cs
	e.upload(t, "orders", "../../examples/orders")
	rt := store.Runtime{InstanceID: e.dev.InstanceID, Name: "shop", UID: "ir-quiet", Spec: `{"barURL":["http://cp/api/v1/bar-files/orders/content"],"configurations":[]}`,
		FetchTokenHash: "x", CreatedBy: "user:dev", UpdatedBy: "user:dev"}
	if _, _, err := e.st.PutRuntime(ctx, rt, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.PutAPI(ctx, e.dev, "orders", apis.APISpec{Version: "1.0.0", BasePath: "/orders", BARFile: "orders"}, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.PutPlan(ctx, e.dev, "gold", apis.PlanSpec{APIs: []string{"orders"}, Auth: "client-id", RateLimit: "10/1m"}, false); err != nil {
		t.Fatal(err)
	}
	const poll = time.Millisecond // every tick is due
	first, tag, err := e.svc.WaitGatewayState(ctx, "ir-quiet", "", 0, poll)
	if err != nil || len(first.APIs) != 1 {
		t.Fatalf("first state: %d APIs, %v", len(first.APIs), err)
	}
	compiles := cs.lookups.Load()
	if _, got, err := e.svc.WaitGatewayState(ctx, "ir-quiet", tag, 100*time.Millisecond, poll); err != nil || got != tag {
		t.Fatalf("an idle watch ended with tag %s (%v), want %s", got, err, tag)
	}
	if n := cs.lookups.Load() - compiles; n != 0 {
		t.Errorf("polls compiled the state %d more times with nothing written", n)
	}

	other, err := store.Open(ctx, "sqlite:"+e.st.Location(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	rt.Spec = `{"barURL":[],"configurations":[]}` // the API's flows no longer run there
	if _, _, err := other.PutRuntime(ctx, rt, nil); err != nil {
		t.Fatal(err)
	}
	st, got, err := e.svc.WaitGatewayState(ctx, "ir-quiet", tag, time.Minute, poll)
	if err != nil || got == tag || len(st.APIs) != 0 {
		t.Fatalf("after another process's write: tag %s (was %s), %d APIs, %v", got, tag, len(st.APIs), err)
	}
}
