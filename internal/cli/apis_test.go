package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

func TestPublishedAPIVerbsAgainstServer(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Env: []string{"SLUICE_RUNTIME_BACKEND=none"}})
	cli := newCLI(t)
	cli.ok("login", "--from-file", filepath.Join(srv.DataDir, "initial-credentials.json"))
	cli.ok("bar", "push", buildExample(t, cli, "orders", nil))

	var api struct {
		Metadata struct{ Name, ID string }
		Status   struct {
			DocumentSource string
			Flows          []struct{ Name string }
		}
	}
	cli.okJSON(&api, "apis", "apply", "orders", "--version", "1.2.0", "--bar-file", "orders", "--base-path", "/orders")
	if api.Metadata.ID == "" || api.Status.DocumentSource != "orders:openapi/orders.yaml" || len(api.Status.Flows) != 2 {
		t.Errorf("apis apply = %+v", api)
	}
	if out := cli.ok("apis", "list"); !strings.Contains(out, "orders") || !strings.Contains(out, "create-order,get-order") {
		t.Errorf("apis list:\n%s", out)
	}
	doc := filepath.Join(t.TempDir(), "orders.json")
	cli.ok("apis", "document", "orders", "--file", doc)
	b, err := os.ReadFile(doc)
	var d map[string]any
	if err != nil || json.Unmarshal(b, &d) != nil || d["openapi"] != "3.1.0" {
		t.Errorf("apis document wrote %s (%v)", b, err)
	}
	cli.failsWith(1, "flows", "", nil, "apis", "apply", "bad", "--version", "1", "--bar-file", "orders", "--flow", "nope")

	cli.ok("plans", "apply", "gold", "--api", "orders", "--auth", "client-id", "--client-secret", "--rate-limit", "100/1m")
	if out := cli.ok("plans", "get", "gold"); !strings.Contains(out, "client-id+secret") || !strings.Contains(out, "100/1m") {
		t.Errorf("plans get:\n%s", out)
	}
	cli.failsWith(1, "API ghost", "", nil, "plans", "apply", "x", "--api", "ghost", "--auth", "oauth")
	cli.failsWith(1, "plan", "", nil, "subscriptions", "apply", "s", "--plan", "silver", "--app", "sandbox/acme/shop")
	cli.failsWith(1, "gold", "", nil, "apis", "delete", "orders")
	cli.ok("plans", "delete", "gold")
	cli.ok("apis", "delete", "orders")
	if out := cli.ok("apis", "list", "-o", "json"); !strings.Contains(out, `"apis": []`) {
		t.Errorf("after delete: %s", out)
	}
}
