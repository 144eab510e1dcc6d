package cli_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

type instanceListOut struct {
	Instances []struct {
		ID, Name string
		Contents struct {
			Users, APIKeys, Credentials, BARFiles int
			IntegrationRuntimes                   []string
		}
	}
}

// instances list and delete work on the store of a serving control plane;
// delete says what it removes, refuses while runtimes exist unless
// --force, and the deleted instance's tokens stop working at once.
func TestInstancesListAndDelete(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none"}})
	cli := newCLI(t)
	dd := []string{"--data-dir", srv.DataDir}

	var b iam.InitialCredentials
	if err := json.Unmarshal([]byte(cli.ok(append([]string{"instances", "create", "team-b", "-o", "json"}, dd...)...)), &b); err != nil {
		t.Fatal(err)
	}
	var list instanceListOut
	cli.okJSON(&list, append([]string{"instances", "list"}, dd...)...)
	if len(list.Instances) != 2 || list.Instances[1].ID != b.InstanceID || list.Instances[1].Name != "team-b" {
		t.Fatalf("instances list: %+v", list)
	}
	if c := list.Instances[1].Contents; c.Users != 1 || c.APIKeys != 1 || c.Credentials != 1 || len(c.IntegrationRuntimes) != 0 {
		t.Errorf("team-b holds %+v; want its admin, key and credential", c)
	}
	if out := cli.ok(append([]string{"instances", "list"}, dd...)...); !strings.HasPrefix(out, "ID ") || !strings.Contains(out, "team-b") {
		t.Errorf("instances list:\n%s", out)
	}

	// team-b gets a runtime (its BAR does not exist yet: accepted, pending).
	env := []string{"SLUICE_ENDPOINT=" + srv.URL, "SLUICE_INSTANCE_ID=" + b.InstanceID, "SLUICE_CLIENT_ID=" + b.ClientID,
		"SLUICE_CLIENT_SECRET=" + b.ClientSecret, "SLUICE_API_KEY=" + b.APIKey}
	asB := func(args ...string) result { return cli.run("", env, args...) }
	if r := asB("runtimes", "create", "rt1", "--bar", srv.URL+"/api/v1/bar-files/later/content"); r.code != 0 {
		t.Fatalf("runtimes create: %d %s", r.code, r.stderr)
	}

	cli.failsWith(1, fmt.Sprintf("instance %s (team-b) has 1 integration runtime(s): rt1: delete them first, or give --force to delete them with the instance", b.InstanceID),
		"", nil, append([]string{"instances", "delete", "team-b"}, dd...)...)
	if r := asB("runtimes", "get", "rt1"); r.code != 0 {
		t.Fatalf("a refused delete changed something: runtimes get: %d %s", r.code, r.stderr)
	}
	cli.failsWith(1, "no instance has the id or name team-c", "", nil, append([]string{"instances", "delete", "team-c"}, dd...)...)
	cli.failsWith(2, `-o "xml" is not one of table, json, yaml`, "", nil, append([]string{"instances", "delete", "team-b", "-o", "xml"}, dd...)...)

	out := cli.ok(append([]string{"instances", "delete", b.InstanceID, "--force"}, dd...)...)
	want := fmt.Sprintf("deleted instance %s (team-b) with 1 user, 0 service IDs, 1 API key, 1 credential, 0 configurations, 0 BAR files, 1 integration runtime, 0 traces; its audit trail is kept\n", b.InstanceID)
	if out != want {
		t.Errorf("delete said %q, want %q", out, want)
	}
	if r := asB("runtimes", "list"); r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Errorf("team-b's credentials after its deletion: exit %d %s", r.code, r.stderr)
	}
	list = instanceListOut{}
	cli.okJSON(&list, append([]string{"instances", "list"}, dd...)...)
	if len(list.Instances) != 1 || list.Instances[0].ID != srv.Creds.InstanceID {
		t.Errorf("after delete: %+v", list)
	}
	// The first instance is untouched, and as the only one left it stays.
	if code, body := srv.Admin(t).Do("GET", "/api/v1/whoami", nil); code != 200 {
		t.Errorf("first instance after deleting team-b: %d %s", code, body)
	}
	cli.failsWith(1, "is the store's only instance: it is not deleted", "", nil, append([]string{"instances", "delete", srv.Creds.InstanceID}, dd...)...)
}
