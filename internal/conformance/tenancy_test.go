package conformance

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// createInstance runs `sluice instances create` against the data dir of a
// serving control plane, as an operator would.
func createInstance(t *testing.T, srv *servertest.Server, dsn, name string) iam.InitialCredentials {
	t.Helper()
	args := []string{"instances", "create", name, "--data-dir", srv.DataDir, "-o", "json"}
	if dsn != "" {
		args = append(args, "--store", dsn)
	}
	cmd := exec.Command(servertest.Binary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sluice instances create %s: %v\n%s", name, err, stderr.String())
	}
	var c iam.InitialCredentials
	if err := json.Unmarshal(stdout.Bytes(), &c); err != nil {
		t.Fatalf("sluice instances create -o json printed %q: %v", stdout.String(), err)
	}
	if c.InstanceID == "" || c.ClientID == "" || c.ClientSecret == "" || c.APIKey == "" || c.Password == "" {
		t.Fatalf("sluice instances create printed incomplete credentials (fields empty)")
	}
	if c.Endpoint != srv.URL {
		t.Errorf("sluice instances create printed endpoint %q, want the first start's %q", c.Endpoint, srv.URL)
	}
	return c
}

func TestInstancesCreateRefusesBadInput(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad name", []string{"instances", "create", "no spaces please", "--data-dir", srv.DataDir}, "instance name"},
		{"missing data dir", []string{"instances", "create", "x", "--data-dir", filepath.Join(t.TempDir(), "nope")}, "does not exist"},
		{"never served", []string{"instances", "create", "x", "--data-dir", t.TempDir()}, "no instance yet"},
		{"bad output", []string{"instances", "create", "x", "--data-dir", srv.DataDir, "-o", "xml"}, "-o \"xml\""},
		{"no name", []string{"instances", "create", "--data-dir", srv.DataDir}, "accepts 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(servertest.Binary(t), tc.args...).CombinedOutput()
			if err == nil {
				t.Fatalf("succeeded: %s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q does not say %q", out, tc.want)
			}
		})
	}
}

// TestTenantIsolation puts two instances on one control plane and proves
// that a token of one never reaches the other's objects: every identity
// route naming the other's objects answers 404 or 403 with none of its
// data, lists hold only the caller's objects, and credentials of the two
// cannot be mixed in any token request.
func TestTenantIsolation(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) { testTenantIsolation(t, storetest.DSN(t, kind)) })
	}
}

func testTenantIsolation(t *testing.T, dsn string) {
	srv := servertest.Start(t, servertest.Options{Store: dsn})
	h := newHarness(t, srv)
	a := srv.Creds
	b := createInstance(t, srv, dsn, "tenant-b")
	if b.InstanceID == a.InstanceID || b.ClientID == a.ClientID {
		t.Fatal("the new instance reuses the first one's ids")
	}

	// Instance A, with objects whose ids and descriptions are markers that
	// must never reach instance B.
	adminA := h.login("A: exchange", a.ClientID, a.ClientSecret, a.InstanceID, a.APIKey)
	userA := decode[object](t, h.do(call{label: "A: create user", method: "POST", path: "/api/v1/users", as: adminA, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "alice"}, "spec": map[string]any{"role": "developer", "description": "marker-A-user"}}}))
	h.do(call{label: "A: create service ID", method: "POST", path: "/api/v1/service-ids", as: adminA, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "ci"}, "spec": map[string]any{"role": "developer", "description": "marker-A-sid"}}})
	keyA := decode[object](t, h.do(call{label: "A: create API key", method: "POST", path: "/api/v1/api-keys", as: adminA, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "alice-key"}, "spec": map[string]any{"description": "marker-A-key", "owner": map[string]any{"kind": "user", "name": "alice"}}}}))
	credA := decode[object](t, h.do(call{label: "A: create credential", method: "POST", path: "/api/v1/credentials", as: adminA, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "pipeline"}, "spec": map[string]any{"description": "marker-A-cred"}}}))
	// And integration resources: a configuration, a BAR file, a runtime.
	h.do(call{label: "A: create configuration", method: "PUT", path: "/api/v1/configurations/db", as: adminA, want: 201, conforms: true,
		body: map[string]any{"spec": map[string]any{"type": "setdbparms", "description": "marker-A-config",
			"data": base64.StdEncoding.EncodeToString([]byte("jdbc::orders app pa55word\n"))}}})
	barA := decode[map[string]any](t, h.do(call{label: "A: upload BAR", method: "PUT", path: "/api/v1/bar-files/hello", as: adminA,
		body: buildBAR(t, "hello"), contentType: "application/octet-stream", want: 201, conforms: true}))
	barURL, _ := barA["url"].(string)
	h.do(call{label: "A: create runtime", method: "PUT", path: "/api/v1/integration-runtimes/web", as: adminA, want: 201, conforms: true,
		body: map[string]any{"spec": map[string]any{"barURL": []string{barURL}, "configurations": []string{"db"}, "replicas": 0, "version": "12.0.99.0-r77"}}})
	h.do(call{label: "A: start trace", method: "PUT", path: "/api/v1/traces/ta", as: adminA, want: 201, conforms: true,
		body: map[string]any{"spec": map[string]any{"integrationRuntimeName": "web", "type": "user"}}})
	markersA := []string{a.InstanceID, a.ClientID, userA.Metadata.ID, keyA.Metadata.ID, credA.ClientID,
		"marker-A-user", "marker-A-sid", "marker-A-key", "marker-A-cred", "marker-A-config", "12.0.99.0-r77", barA["sha256"].(string)}

	adminB := h.login("B: exchange", b.ClientID, b.ClientSecret, b.InstanceID, b.APIKey)
	who := decode[map[string]any](t, h.do(call{label: "B: whoami", method: "GET", path: "/api/v1/whoami", as: adminB, want: 200, conforms: true}))
	if who["instanceId"] != b.InstanceID {
		t.Fatalf("B's token acts in instance %v, want %s", who["instanceId"], b.InstanceID)
	}

	// Every identity route that names one of A's objects.
	for _, c := range []call{
		{method: "GET", path: "/api/v1/users/alice"},
		{method: "DELETE", path: "/api/v1/users/alice"},
		{method: "GET", path: "/api/v1/service-ids/ci"},
		{method: "DELETE", path: "/api/v1/service-ids/ci"},
		{method: "GET", path: "/api/v1/api-keys/" + keyA.Metadata.ID},
		{method: "POST", path: "/api/v1/api-keys/" + keyA.Metadata.ID + "/lock"},
		{method: "POST", path: "/api/v1/api-keys/" + keyA.Metadata.ID + "/unlock"},
		{method: "DELETE", path: "/api/v1/api-keys/" + keyA.Metadata.ID},
		{method: "GET", path: "/api/v1/credentials/pipeline"},
		{method: "DELETE", path: "/api/v1/credentials/pipeline"},
		{method: "GET", path: "/api/v1/configurations/db"},
		{method: "DELETE", path: "/api/v1/configurations/db"},
		{method: "GET", path: "/api/v1/bar-files/hello"},
		{method: "GET", path: "/api/v1/bar-files/hello/content"},
		{method: "DELETE", path: "/api/v1/bar-files/hello"},
		{method: "GET", path: "/api/v1/integration-runtimes/web"},
		{method: "GET", path: "/api/v1/integration-runtimes/web/logs"},
		{method: "DELETE", path: "/api/v1/integration-runtimes/web"},
		{method: "GET", path: "/api/v1/traces/ta"},
		{method: "GET", path: "/api/v1/traces/ta/download"},
		{method: "DELETE", path: "/api/v1/traces/ta"},
		{label: "B: trace of A's runtime", method: "PUT", path: "/api/v1/traces/tb",
			body: map[string]any{"spec": map[string]any{"integrationRuntimeName": "web", "type": "user"}}},
		{label: "B: API key for A's user", method: "POST", path: "/api/v1/api-keys",
			body: map[string]any{"metadata": map[string]any{"name": "steal"}, "spec": map[string]any{"owner": map[string]any{"kind": "user", "name": "alice"}}}},
		{label: "B: credential owned by A's service ID", method: "POST", path: "/api/v1/credentials",
			body: map[string]any{"metadata": map[string]any{"name": "steal"}, "spec": map[string]any{"owner": map[string]any{"kind": "serviceId", "name": "ci"}}}},
	} {
		if c.label == "" {
			c.label = "B: " + c.method + " " + c.path
		}
		c.as, c.conforms = adminB, true
		ex := h.do(c)
		// A body naming A's object may also be refused as bad input (400).
		if ex.status != 404 && ex.status != 403 && (c.body == nil || ex.status != 400) {
			t.Errorf("%s: status %d, want 404 or 403: %s", c.label, ex.status, ex.body)
		}
	}

	// PUT by name acts in B's own instance: it creates B's object and
	// leaves A's namesake alone.
	h.do(call{label: "B: PUT user alice", method: "PUT", path: "/api/v1/users/alice", as: adminB, want: 201, conforms: true,
		body: map[string]any{"spec": map[string]any{"role": "viewer", "description": "B's alice"}}})
	credB := decode[object](t, h.do(call{label: "B: PUT credential pipeline", method: "PUT", path: "/api/v1/credentials/pipeline", as: adminB, want: 201, conforms: true,
		body: map[string]any{"spec": map[string]any{"description": "B's pipeline"}}}))
	if credB.ClientID == credA.ClientID {
		t.Error("B's credential got A's client id")
	}

	// Lists hold only B's objects.
	users := decode[struct{ Users []object }](t, h.do(call{label: "B: list users", method: "GET", path: "/api/v1/users", as: adminB, want: 200, conforms: true}))
	for _, u := range users.Users {
		if u.Metadata.ID == userA.Metadata.ID {
			t.Errorf("B's user list holds A's user %s", u.Metadata.ID)
		}
	}
	if len(users.Users) != 2 {
		t.Errorf("B lists %d users, want its admin and its alice", len(users.Users))
	}
	sids := decode[struct{ ServiceIDs []object }](t, h.do(call{label: "B: list service IDs", method: "GET", path: "/api/v1/service-ids", as: adminB, want: 200, conforms: true}))
	if len(sids.ServiceIDs) != 0 {
		t.Errorf("B lists service IDs %v, it has none", sids.ServiceIDs)
	}
	keys := decode[struct{ APIKeys []object }](t, h.do(call{label: "B: list API keys", method: "GET", path: "/api/v1/api-keys", as: adminB, want: 200, conforms: true}))
	if len(keys.APIKeys) != 1 {
		t.Errorf("B lists %d API keys, want its initial one", len(keys.APIKeys))
	}
	creds := decode[struct{ Credentials []object }](t, h.do(call{label: "B: list credentials", method: "GET", path: "/api/v1/credentials", as: adminB, want: 200, conforms: true}))
	if len(creds.Credentials) != 2 {
		t.Errorf("B lists %d credentials, want its initial one and its pipeline", len(creds.Credentials))
	}
	h.do(call{label: "B: audit", method: "GET", path: "/api/v1/audit", as: adminB, want: 200, conforms: true})
	for _, l := range []struct{ path, key string }{{"/api/v1/configurations", "configurations"}, {"/api/v1/bar-files", "barFiles"},
		{"/api/v1/integration-runtimes", "integrationRuntimes"}, {"/api/v1/traces", "traces"}, {"/api/v1/traces?spec.integrationRuntimeName=web", "traces"}} {
		list := decode[map[string][]any](t, h.do(call{label: "B: list " + l.key, method: "GET", path: l.path, as: adminB, want: 200, conforms: true}))
		if len(list[l.key]) != 0 {
			t.Errorf("B lists %d %s, it has none", len(list[l.key]), l.key)
		}
	}
	// B's runtime naming A's BAR url resolves the name in B's instance:
	// it must never make A's BAR file B's.
	bRuntime := h.do(call{label: "B: runtime naming A's BAR url", method: "PUT", path: "/api/v1/integration-runtimes/steal", as: adminB, conforms: true,
		body: map[string]any{"spec": map[string]any{"barURL": []string{barURL}, "replicas": 0}}})
	if bRuntime.status == 201 {
		h.do(call{label: "B: A's BAR through B's runtime's url", method: "GET", path: "/api/v1/bar-files/hello/content", as: adminB, want: 404, conforms: true})
		h.do(call{label: "B: delete runtime steal", method: "DELETE", path: "/api/v1/integration-runtimes/steal", as: adminB, want: 204, conforms: true})
	}

	// Credentials of the two instances never combine into a token.
	tokenHeaders := func(id, secret, instance string) map[string]string {
		return map[string]string{"X-IBM-Client-Id": id, "X-IBM-Client-Secret": secret, "x-ibm-instance-id": instance}
	}
	for _, m := range []struct {
		label                     string
		client, secret, inst, key string
	}{
		{"A's client, B's instance and key", a.ClientID, a.ClientSecret, b.InstanceID, b.APIKey},
		{"A's client and instance, B's key", a.ClientID, a.ClientSecret, a.InstanceID, b.APIKey},
		{"B's client and instance, A's key", b.ClientID, b.ClientSecret, b.InstanceID, a.APIKey},
		{"A's client and key, B's instance", a.ClientID, a.ClientSecret, b.InstanceID, a.APIKey},
		{"A's client id with B's secret", a.ClientID, b.ClientSecret, a.InstanceID, a.APIKey},
	} {
		h.do(call{label: "mix: " + m.label, method: "POST", path: "/api/v1/tokens", header: tokenHeaders(m.client, m.secret, m.inst),
			body: map[string]string{"apiKey": m.key}, want: 401, conforms: true})
	}
	h.do(call{label: "mix: OAuth api-key grant, A's client, B's key", method: "POST", path: "/oauth/token", basic: []string{a.ClientID, a.ClientSecret},
		body: url.Values{"grant_type": {iam.GrantTypeAPIKey}, "api_key": {b.APIKey}}, conforms: true})
	if ex := h.log[len(h.log)-1]; ex.status == 200 {
		t.Errorf("the API-key grant mixed A's client with B's key: %s", ex.body)
	}

	// A's client id with B's token, and the reverse.
	h.do(call{label: "B's token with A's client id", method: "GET", path: "/api/v1/whoami", want: 401, conforms: true,
		header: map[string]string{"Authorization": "Bearer " + adminB.Token, "X-IBM-Client-Id": a.ClientID}})
	h.do(call{label: "A's token with B's client id", method: "GET", path: "/api/v1/whoami", want: 401, conforms: true,
		header: map[string]string{"Authorization": "Bearer " + adminA.Token, "X-IBM-Client-Id": b.ClientID}})

	// A's client may neither inspect nor revoke B's tokens.
	in := h.do(call{label: "A introspects B's token", method: "POST", path: "/oauth/introspect", basic: []string{a.ClientID, a.ClientSecret},
		body: url.Values{"token": {adminB.Token}}, want: 200, conforms: true})
	if strings.TrimSpace(string(in.body)) != `{"active":false}` {
		t.Errorf("A's client introspected B's token: %s", in.body)
	}
	h.do(call{label: "A revokes B's token", method: "POST", path: "/oauth/revoke", basic: []string{a.ClientID, a.ClientSecret},
		body: url.Values{"token": {adminB.Token}}, conforms: true})
	h.do(call{label: "B: whoami after A tried to revoke", method: "GET", path: "/api/v1/whoami", as: adminB, want: 200, conforms: true})

	// A's objects are untouched by all of the above.
	got := decode[map[string]map[string]any](t, h.do(call{label: "A: user alice", method: "GET", path: "/api/v1/users/alice", as: adminA, want: 200, conforms: true}))
	if got["spec"]["description"] != "marker-A-user" || got["spec"]["role"] != "developer" {
		t.Errorf("A's alice changed: %v", got["spec"])
	}
	k := decode[map[string]map[string]any](t, h.do(call{label: "A: key", method: "GET", path: "/api/v1/api-keys/" + keyA.Metadata.ID, as: adminA, want: 200, conforms: true}))
	if k["status"]["locked"] != false {
		t.Errorf("A's key changed: %v", k["status"])
	}
	cr := decode[map[string]map[string]any](t, h.do(call{label: "A: credential", method: "GET", path: "/api/v1/credentials/pipeline", as: adminA, want: 200, conforms: true}))
	if cr["status"]["clientId"] != credA.ClientID || cr["spec"]["description"] != "marker-A-cred" {
		t.Errorf("A's credential changed: %v", cr)
	}
	h.do(call{label: "A: service ID", method: "GET", path: "/api/v1/service-ids/ci", as: adminA, want: 200, conforms: true})
	h.do(call{label: "A: configuration", method: "GET", path: "/api/v1/configurations/db", as: adminA, want: 200, conforms: true})
	h.do(call{label: "A: BAR content", method: "GET", path: "/api/v1/bar-files/hello/content", as: adminA, want: 200, conforms: true})
	h.do(call{label: "A: runtime", method: "GET", path: "/api/v1/integration-runtimes/web", as: adminA, want: 200, conforms: true})
	h.do(call{label: "A: trace", method: "GET", path: "/api/v1/traces/ta", as: adminA, want: 200, conforms: true})
	h.login("A: exchange with alice's key", a.ClientID, a.ClientSecret, a.InstanceID, keyA.Key)

	// B's audit, read again after the mixed token requests, records none
	// of A's objects either.
	h.do(call{label: "B: audit at the end", method: "GET", path: "/api/v1/audit", as: adminB, want: 200, conforms: true})

	// Nothing B was answered holds any of A's data, beyond what B's own
	// request named (a 404 may repeat the id it was asked for).
	for _, ex := range h.log {
		if !strings.HasPrefix(ex.label, "B") && !strings.HasPrefix(ex.label, "mix") && !strings.HasPrefix(ex.label, "A introspects") {
			continue
		}
		seen := string(ex.body) + headerText(ex.header)
		asked := ex.target + string(ex.reqBody) + headerText(ex.reqHeader)
		for _, m := range markersA {
			if strings.Contains(seen, m) && !strings.Contains(asked, m) {
				t.Errorf("%s: the answer holds A's %q: %s", ex.label, m, ex.body)
			}
		}
	}
}

func headerText(h map[string][]string) string {
	var b strings.Builder
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	return b.String()
}
