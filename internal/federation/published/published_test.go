package published_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/client"
	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/federation/exchange"
	"github.com/sluice-dev/sluice/internal/federation/federationtest"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// End to end, with both ways of running the agent — `sluice serve
// --gravitee-controller …` (the control plane's services) and `sluice
// federation-agent` (the public API) — against federationtest's
// controller, written from Gravitee's public protocol description since
// Gravitee cannot run here. A real runtime serves the published API and
// enforces its plans, so the credentials SUBSCRIBE returns are called with.
func TestGraviteeSubscriptionsOfPublishedAPIs(t *testing.T) {
	ctrl := federationtest.NewController(t)
	srv := servertest.Start(t, servertest.Options{
		Args: []string{"--gravitee-controller", ctrl.Endpoint(), "--gravitee-integration-id", ctrl.IntegrationID},
		Env:  []string{"SLUICE_GRAVITEE_TOKEN=" + ctrl.Token},
	})
	c, err := client.New(srv.URL, client.Options{Credentials: client.Credentials{InstanceID: srv.Creds.InstanceID,
		ClientID: srv.Creds.ClientID, ClientSecret: client.NewSecret(srv.Creds.ClientSecret), APIKey: client.NewSecret(srv.Creds.APIKey)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	endpoint := deploy(t, c, "hello", "../../../examples/hello")
	greet, err := c.PutAPI(ctx, client.PublishedAPI{Metadata: client.Metadata{Name: "greet"},
		Spec: client.APISpec{Title: "Greetings", Version: "1.2.0", BasePath: "/hello", Runtime: "hello"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []client.Plan{
		{Metadata: client.Metadata{Name: "gold"}, Spec: client.PlanSpec{Title: "Gold", APIs: []string{"greet"}, Auth: "client-id", RateLimit: "100/1m"}},
		{Metadata: client.Metadata{Name: "partners"}, Spec: client.PlanSpec{APIs: []string{"greet"}, Auth: "oauth"}},
	} {
		if _, err := c.PutPlan(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	plans := map[string]client.Plan{}
	ps, _ := c.ListPlans(ctx)
	for _, p := range ps {
		plans[p.Metadata.Name] = p
	}
	doc, err := c.APIDocument(ctx, "greet")
	if err != nil {
		t.Fatal(err)
	}

	cc := ctrl.Next(t)
	served := discover(t, cc)
	if len(served) != 1 {
		t.Fatalf("DISCOVER: %+v", served)
	}
	a := served[0]
	if a.ID != greet.Metadata.ID || a.Name != "Greetings" || a.Version != "1.2.0" || a.ConnectionDetails["url"] != baseOf(endpoint)+"/hello" {
		t.Errorf("API %+v", a)
	}
	if len(a.Pages) != 1 || a.Pages[0].PageType != exchange.PageSwagger || a.Pages[0].Content != string(doc) {
		t.Errorf("pages %+v, want the API's document", a.Pages)
	}
	if len(a.Plans) != 2 || a.Plans[0].ID != plans["gold"].Metadata.ID || a.Plans[0].PlanSecurityType != exchange.PlanAPIKey ||
		a.Plans[0].Name != "Gold" || len(a.Plans[0].Characteristics) != 1 ||
		a.Plans[1].ID != plans["partners"].Metadata.ID || a.Plans[1].PlanSecurityType != exchange.PlanOAuth2 {
		t.Errorf("plans %+v", a.Plans)
	}

	call := func(header, value string) int {
		req, _ := http.NewRequest("GET", baseOf(endpoint)+"/hello/gravitee", nil)
		if header != "" {
			req.Header.Set(header, value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The runtime takes changes from a watch on the control plane: wait
	// for the status (bounded by the suite's guard, asserting nothing on time).
	eventually := func(what string, want int, header, value string) {
		t.Helper()
		deadline := time.Now().Add(federationtest.Guard)
		for {
			got := call(header, value)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %d, want %d", what, got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	eventually("no credential", 401, "", "")

	subscribe := func(cc *federationtest.Conn, subID, plan, typ string) exchange.Reply {
		return cc.Reply(cc.Send(exchange.TypeSubscribe, exchange.SubscribePayload{APIID: greet.Metadata.ID,
			Subscription: exchange.Subscription{GraviteeSubscriptionID: subID, GraviteeApplicationID: "app-7f3",
				GraviteeApplicationName: "Shop front", Type: typ, Metadata: map[string]string{exchange.MetadataPlanID: plan}}}))
	}
	result := func(r exchange.Reply) exchange.SubscriptionResult {
		t.Helper()
		if r.CommandStatus != exchange.StatusSucceeded {
			t.Fatalf("SUBSCRIBE: %+v", r)
		}
		var p exchange.SubscribeReplyPayload
		if err := exchange.DecodePayload(r.Payload, &p); err != nil {
			t.Fatal(err)
		}
		return p.Subscription
	}

	first := result(subscribe(cc, "0c5e7b2a-1111-4a4a-9b9b-000000000001", plans["gold"].Metadata.ID, exchange.SubscriptionAPIKey))
	if first.APIKey == "" || first.APIKey != first.Metadata["clientId"] || first.Metadata["clientSecret"] != "" {
		t.Fatalf("API_KEY subscription %+v", first)
	}
	eventually("the subscription's API key", 200, "X-IBM-Client-Id", first.APIKey)
	again := result(subscribe(cc, "0c5e7b2a-1111-4a4a-9b9b-000000000001", plans["gold"].Metadata.ID, exchange.SubscriptionAPIKey))
	if again.APIKey != first.APIKey {
		t.Errorf("a repeated SUBSCRIBE answered key %s, then %s", first.APIKey, again.APIKey)
	}
	subs, err := c.ListSubscriptions(ctx)
	if err != nil || len(subs) != 1 || subs[0].Spec.Plan != "gold" || subs[0].Status.State != "active" {
		t.Fatalf("subscriptions %+v %v", subs, err)
	}
	app := strings.Split(subs[0].Spec.App, "/")
	appPath := client.AppPath{Catalog: app[0], ConsumerOrg: app[1], App: app[2]}
	org, err := c.GetConsumer(ctx, client.AppPath{Catalog: app[0], ConsumerOrg: app[1]})
	if err != nil || org.Spec.Title != "Shop front" {
		t.Errorf("consumer org %+v %v", org, err)
	}
	creds, err := c.ListAppCredentials(ctx, appPath, false)
	if err != nil || len(creds) != 1 || creds[0].Status.ClientID != first.APIKey {
		t.Fatalf("credentials of %s: %+v %v", subs[0].Spec.App, creds, err)
	}

	t.Run("oauth", func(t *testing.T) {
		s := result(subscribe(cc, "0c5e7b2a-1111-4a4a-9b9b-000000000002", plans["partners"].Metadata.ID, exchange.SubscriptionOAuth))
		if s.APIKey != "" || s.Metadata["clientId"] == "" || !strings.HasPrefix(s.Metadata["clientSecret"], "slas_") {
			t.Fatalf("OAUTH subscription: client id %q, api key %q, secret given %v", s.Metadata["clientId"], s.APIKey, s.Metadata["clientSecret"] != "")
		}
		form := url.Values{"grant_type": {"client_credentials"}}
		req, _ := http.NewRequest("POST", srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(s.Metadata["clientId"], s.Metadata["clientSecret"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		if resp.StatusCode != 200 || tok.AccessToken == "" {
			t.Fatalf("token for the OAUTH subscription's credential: %d", resp.StatusCode)
		}
		eventually("the subscription's bearer token", 200, "Authorization", "Bearer "+tok.AccessToken)
		// The secret was shown once: a repeated SUBSCRIBE of an OAUTH
		// subscription replaces the credential of the same app.
		s2 := result(subscribe(cc, "0c5e7b2a-1111-4a4a-9b9b-000000000002", plans["partners"].Metadata.ID, exchange.SubscriptionOAuth))
		if s2.Metadata["clientSecret"] == "" || s2.Metadata["clientSecret"] == s.Metadata["clientSecret"] {
			t.Errorf("a repeated OAUTH SUBSCRIBE did not give a new secret")
		}
		if n, _ := c.ListSubscriptions(ctx); len(n) != 2 {
			t.Errorf("%d subscriptions after a repeated SUBSCRIBE, want 2", len(n))
		}
		unsubscribe(t, cc, "0c5e7b2a-1111-4a4a-9b9b-000000000002")
	})

	t.Run("refused", func(t *testing.T) {
		for name, r := range map[string]exchange.Reply{
			"wrong type": subscribe(cc, "gs-wrong", plans["gold"].Metadata.ID, exchange.SubscriptionOAuth),
			"other plan": subscribe(cc, "gs-other", "gold-or-not", exchange.SubscriptionAPIKey),
			"no plan":    subscribe(cc, "gs-noplan", "", exchange.SubscriptionAPIKey),
			"unknown api": cc.Reply(cc.Send(exchange.TypeSubscribe, exchange.SubscribePayload{APIID: "nope",
				Subscription: exchange.Subscription{GraviteeSubscriptionID: "gs-x", Type: exchange.SubscriptionAPIKey}})),
		} {
			if r.CommandStatus != exchange.StatusError || r.ErrorDetails == "" {
				t.Errorf("%s: %+v", name, r)
			}
		}
		if n, _ := c.ListSubscriptions(ctx); len(n) != 1 {
			t.Errorf("%d subscriptions after refused ones, want 1", len(n))
		}
	})

	t.Run("standalone", func(t *testing.T) {
		ctrl2 := federationtest.NewController(t)
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(ctrl2.Token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(servertest.Binary(t), "federation-agent", "--controller", ctrl2.Endpoint(),
			"--integration-id", ctrl2.IntegrationID, "--token-file", tokenFile, "--log-format", "json")
		cmd.Env = append(os.Environ(), "SLUICE_CONFIG="+filepath.Join(t.TempDir(), "none.yaml"),
			"SLUICE_ENDPOINT="+srv.URL, "SLUICE_INSTANCE_ID="+srv.Creds.InstanceID, "SLUICE_CLIENT_ID="+srv.Creds.ClientID,
			"SLUICE_CLIENT_SECRET="+srv.Creds.ClientSecret, "SLUICE_API_KEY="+srv.Creds.APIKey)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var secrets []string
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
			for _, secret := range append(secrets, srv.Creds.ClientSecret, srv.Creds.APIKey, ctrl2.Token) {
				if strings.Contains(stderr.String(), secret) {
					t.Errorf("a secret reached the agent's log:\n%s", stderr.String())
				}
			}
		})
		cc2 := ctrl2.Next(t)
		standalone := discover(t, cc2)
		x, _ := json.Marshal(served)
		y, _ := json.Marshal(standalone)
		if !bytes.Equal(x, y) {
			t.Fatalf("serve and standalone agents disagree:\n%s\n%s", x, y)
		}
		// The same Gravitee subscription, through the other agent, is the
		// same Sluice subscription.
		s := result(subscribe(cc2, "0c5e7b2a-1111-4a4a-9b9b-000000000001", plans["gold"].Metadata.ID, exchange.SubscriptionAPIKey))
		if s.APIKey != first.APIKey {
			t.Errorf("standalone SUBSCRIBE answered key %s, serve's %s", s.APIKey, first.APIKey)
		}
		o := result(subscribe(cc2, "0c5e7b2a-1111-4a4a-9b9b-000000000003", plans["partners"].Metadata.ID, exchange.SubscriptionOAuth))
		secrets = append(secrets, o.Metadata["clientSecret"])
		if o.Metadata["clientSecret"] == "" {
			t.Errorf("standalone OAUTH subscription has no secret")
		}
		unsubscribe(t, cc2, "0c5e7b2a-1111-4a4a-9b9b-000000000003")
	})

	unsubscribe(t, cc, "0c5e7b2a-1111-4a4a-9b9b-000000000001")
	eventually("the unsubscribed API key", 401, "X-IBM-Client-Id", first.APIKey)
	if subs, err := c.ListSubscriptions(ctx); err != nil || len(subs) != 0 {
		t.Errorf("subscriptions after UNSUBSCRIBE: %+v %v", subs, err)
	}
	if _, err := c.GetConsumer(ctx, appPath); !client.IsNotFound(err) {
		t.Errorf("app after UNSUBSCRIBE: %v", err)
	}
	// Already gone is success.
	unsubscribe(t, cc, "0c5e7b2a-1111-4a4a-9b9b-000000000001")

	// Every change was made through the services, as the agent.
	events, err := c.ListAudit(ctx, client.AuditFilter{Actor: "system:federation-agent", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	done := map[string]bool{}
	for _, e := range events {
		if e.Outcome == "success" {
			done[e.Action] = true
		}
	}
	for _, action := range []string{"consumerOrg.create", "app.create", "subscription.create", "appCredential.create", "subscription.delete", "app.delete"} {
		if !done[action] {
			t.Errorf("no %s by the agent in the audit: %v", action, done)
		}
	}

	// A none plan is open (and opens the API): there is nothing to
	// subscribe to, so it is not federated, and a SUBSCRIBE to it is refused.
	open, err := c.PutPlan(ctx, client.Plan{Metadata: client.Metadata{Name: "open"}, Spec: client.PlanSpec{APIs: []string{"greet"}, Auth: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	if after := discover(t, cc); len(after) != 1 || len(after[0].Plans) != 2 {
		t.Errorf("with a none plan: %+v", after)
	}
	if r := subscribe(cc, "gs-open", open.Metadata.ID, exchange.SubscriptionAPIKey); r.CommandStatus != exchange.StatusError {
		t.Errorf("SUBSCRIBE to a none plan: %+v", r)
	}
}

func unsubscribe(t *testing.T, cc *federationtest.Conn, subID string) {
	t.Helper()
	r := cc.Reply(cc.Send(exchange.TypeUnsubscribe, exchange.SubscribePayload{APIID: "ignored",
		Subscription: exchange.Subscription{GraviteeSubscriptionID: subID, GraviteeApplicationID: "app-7f3"}}))
	if r.CommandStatus != exchange.StatusSucceeded {
		t.Fatalf("UNSUBSCRIBE %s: %+v", subID, r)
	}
}

func baseOf(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// deploy uploads the project in dir as a BAR and runs it, waiting until
// it is Ready; it returns its first endpoint's URL.
func deploy(t *testing.T, c *client.Client, name, dir string) string {
	t.Helper()
	ctx := context.Background()
	content, _, err := bar.Build(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.PutBARFile(ctx, name, bytes.NewReader(content), int64(len(content)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRuntime(ctx, client.IntegrationRuntime{Metadata: client.RuntimeMetadata{Name: name},
		Spec: client.RuntimeSpec{BarURL: []string{f.URL}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(federationtest.Guard)
	for {
		rt, err := c.GetRuntime(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if rt.Status.Phase == client.PhaseReady && len(rt.Status.Endpoints) > 0 {
			return rt.Status.Endpoints[0].URI
		}
		if time.Now().After(deadline) {
			t.Fatalf("runtime %s is not Ready: %+v", name, rt.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func discover(t *testing.T, cc *federationtest.Conn) []exchange.API {
	t.Helper()
	r := cc.Reply(cc.Send(exchange.TypeDiscover, struct{}{}))
	if r.CommandStatus != exchange.StatusSucceeded {
		t.Fatalf("DISCOVER: %+v", r)
	}
	var d exchange.DiscoverReplyPayload
	if err := exchange.DecodePayload(r.Payload, &d); err != nil {
		t.Fatal(err)
	}
	return d.APIs
}
