package cli_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

type consumerOut struct {
	Metadata struct{ Name, ID string }
	Spec     struct {
		Title, Summary, State string
		CredentialPolicy      *struct{ DefaultTTL, MaxTTL string }
	}
	ClientID, ClientSecret string
	Capped                 bool
}

// Every consumer object has its verbs: catalogs, consumer orgs and apps
// are listed, shown, created, updated and deleted; credentials and leases
// created (the secret printed once), renewed and revoked.
func TestAppsVerbsAgainstServer(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none"}})
	cli := newCLI(t)
	cli.ok("login", "--from-file", filepath.Join(srv.DataDir, "initial-credentials.json"))

	var o consumerOut
	cli.okJSON(&o, "apps", "catalogs", "create", "prod", "--title", "Production")
	cli.okJSON(&o, "apps", "catalogs", "update", "prod", "--summary", "live")
	if o.Spec.Title != "Production" || o.Spec.Summary != "live" {
		t.Errorf("catalogs update = %+v; want the summary set and the title kept", o.Spec)
	}
	cli.okJSON(&o, "apps", "catalogs", "get", o.Metadata.ID)
	if o.Metadata.Name != "prod" || o.Spec.Summary != "live" {
		t.Errorf("catalogs get by id = %+v", o)
	}
	cli.okJSON(&o, "apps", "catalogs", "update", "staging", "--title", "Staging")
	if o.Metadata.Name != "staging" {
		t.Errorf("catalogs update of a new name = %+v; want it created", o)
	}
	cli.ok("apps", "orgs", "create", "prod", "acme")
	cli.okJSON(&o, "apps", "orgs", "update", "prod", "acme", "--title", "ACME Corp")
	cli.okJSON(&o, "apps", "orgs", "get", "prod", "acme")
	if o.Spec.Title != "ACME Corp" {
		t.Errorf("orgs get after update = %+v", o.Spec)
	}
	if out := cli.ok("apps", "orgs", "list", "prod"); !strings.Contains(out, "acme") {
		t.Errorf("orgs list = %q", out)
	}
	cli.ok("apps", "create", "prod", "acme", "shop", "--default-ttl", "1h", "--max-ttl", "2h")
	cli.okJSON(&o, "apps", "update", "prod", "acme", "shop", "--state", "disabled")
	if o.Spec.State != "disabled" || o.Spec.CredentialPolicy == nil || o.Spec.CredentialPolicy.MaxTTL != "2h" {
		t.Errorf("apps update = %+v; want disabled with the policy kept", o.Spec)
	}
	cli.okJSON(&o, "apps", "credentials", "create", "prod", "acme", "shop", "mobile")
	if !strings.HasPrefix(o.ClientSecret, "slas_") || o.ClientID == "" {
		t.Errorf("credentials create printed no client id and secret: %+v", o)
	}
	if out := cli.ok("apps", "credentials", "list", "prod", "acme", "shop"); !strings.Contains(out, "mobile") || strings.Contains(out, o.ClientSecret) {
		t.Errorf("credentials list = %q; want mobile, never its secret", out)
	}
	var lease consumerOut
	cli.okJSON(&lease, "apps", "leases", "create", "prod", "acme", "shop", "--ttl", "30m")
	cli.okJSON(&o, "apps", "leases", "renew", "prod", "acme", "shop", lease.Metadata.ID, "--increment", "2h")
	if !o.Capped {
		t.Errorf("a renewal to now + 2h with maxTtl 2h is not capped: %+v", o)
	}
	cli.ok("apps", "leases", "revoke-all", "prod", "acme", "shop")
	cli.failsWith(1, "force", "", nil, "apps", "delete", "prod", "acme", "shop")
	cli.ok("apps", "delete", "prod", "acme", "shop", "--force")
	cli.ok("apps", "catalogs", "delete", "prod", "--force")
	cli.ok("apps", "catalogs", "delete", "staging")
	if out := cli.ok("apps", "catalogs", "list"); strings.Contains(out, "prod") || !strings.Contains(out, "sandbox") {
		t.Errorf("catalogs list after the deletes = %q", out)
	}
}
