package flowapis_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/client"
	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/federation/exchange"
	"github.com/sluice-dev/sluice/internal/federation/federationtest"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// Both ways of running the agent, end to end: `sluice serve` with
// --gravitee-controller (the control plane's services as the source) and
// `sluice federation-agent` on its own (the public API as the source),
// each against federationtest's controller — written from Gravitee's
// public protocol description, since Gravitee cannot run here — federating
// two real runtimes on the local backend.
func TestServeAndStandaloneAgentsFederateTheRuntimes(t *testing.T) {
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
	deploy(t, c, "stock", "testdata/stock")
	deploy(t, c, "hello", "../../../examples/hello")

	// Inside `sluice serve`.
	cc := ctrl.Next(t)
	served := discover(t, cc)
	checkAPIs(t, served)

	t.Run("ingest", func(t *testing.T) {
		r := cc.Reply(cc.Send(exchange.TypeStartIngest, exchange.StartIngestPayload{IngestJobID: "job-1", APIIDs: []string{"stock"}}))
		if r.CommandStatus != exchange.StatusSucceeded {
			t.Fatalf("%+v", r)
		}
		b := cc.Command(exchange.TypeIngest)
		var p exchange.IngestPayload
		if err := exchange.DecodePayload(b.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if !p.Done || len(p.APIs) != 1 || p.APIs[0].ID != "stock" || len(p.APIs[0].Pages) != 1 {
			t.Fatalf("%+v", p)
		}
		cc.Ack(b)
	})

	t.Run("health", func(t *testing.T) {
		r := cc.Reply(cc.Send(exchange.TypeHealthCheck, struct{}{}))
		var h exchange.HealthCheckReplyPayload
		if err := exchange.DecodePayload(r.Payload, &h); err != nil || !h.Healthy {
			t.Fatalf("%+v %v", h, err)
		}
	})

	t.Run("subscribe is refused until plans exist", func(t *testing.T) {
		r := cc.Reply(cc.Send(exchange.TypeSubscribe, exchange.SubscribePayload{APIID: "stock",
			Subscription: exchange.Subscription{GraviteeSubscriptionID: "gs-1", Type: exchange.SubscriptionAPIKey}}))
		if r.CommandStatus != exchange.StatusError || !strings.Contains(r.ErrorDetails, "not available") {
			t.Fatalf("%+v", r)
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
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
			for _, secret := range []string{srv.Creds.ClientSecret, srv.Creds.APIKey, ctrl2.Token} {
				if strings.Contains(stderr.String(), secret) {
					t.Errorf("a secret reached the agent's log:\n%s", stderr.String())
				}
			}
		})
		cc2 := ctrl2.Next(t)
		standalone := discover(t, cc2)
		checkAPIs(t, standalone)
		// Both sources see the same thing.
		a, _ := json.Marshal(served)
		b, _ := json.Marshal(standalone)
		if !bytes.Equal(a, b) {
			t.Fatalf("serve and standalone agents disagree:\n%s\n%s", a, b)
		}
	})
}

// deploy uploads the project in dir as a BAR and runs it, waiting until
// it is Ready.
func deploy(t *testing.T, c *client.Client, name, dir string) {
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
			return
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

func checkAPIs(t *testing.T, apis []exchange.API) {
	t.Helper()
	var ids []string
	for _, a := range apis {
		ids = append(ids, a.ID)
	}
	if !slices.Equal(ids, []string{"hello", "stock"}) {
		t.Fatalf("APIs %v, want hello and stock", ids)
	}
	hello, stock := apis[0], apis[1]
	for _, a := range apis {
		if !strings.HasPrefix(a.ConnectionDetails["url"], "http://127.0.0.1:") || a.Type != exchange.APITypeProxy {
			t.Errorf("%s: connection details %v type %s", a.ID, a.ConnectionDetails, a.Type)
		}
		if len(a.Plans) != 0 {
			t.Errorf("%s has plans %v: none exist yet", a.ID, a.Plans)
		}
	}
	// stock ships openapi/stock.yaml: that is its page, byte for byte.
	shipped, err := os.ReadFile("testdata/stock/openapi/stock.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(stock.Pages) != 1 || stock.Pages[0].PageType != exchange.PageSwagger || stock.Pages[0].Filename != "stock.yaml" ||
		stock.Pages[0].Content != string(shipped) {
		t.Errorf("stock pages %+v", stock.Pages)
	}
	// hello ships none: its page is generated from its route.
	if len(hello.Pages) != 1 || hello.Pages[0].Filename != "hello.openapi.json" {
		t.Fatalf("hello pages %+v", hello.Pages)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct {
			Title, Version, Description string
		} `json:"info"`
		Servers []struct{ URL string } `json:"servers"`
		Paths   map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				Name, In string
				Required bool
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(hello.Pages[0].Content), &doc); err != nil {
		t.Fatal(err)
	}
	op, ok := doc.Paths["/hello/{name}"]["get"]
	if doc.OpenAPI != "3.0.3" || doc.Info.Title != "hello" || doc.Info.Version != "1.0.0" || !strings.Contains(doc.Info.Description, "Greets") ||
		!ok || op.OperationID != "hello" || len(op.Parameters) != 1 || op.Parameters[0].Name != "name" || op.Parameters[0].In != "path" ||
		len(doc.Servers) != 1 || doc.Servers[0].URL != hello.ConnectionDetails["url"] {
		t.Errorf("generated document %s", hello.Pages[0].Content)
	}
}
