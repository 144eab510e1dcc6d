package conformance

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	apispec "github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

type object struct {
	Metadata struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	} `json:"metadata"`
	Key          string `json:"key"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

// TestResponsesFollowTheDocument drives every documented operation of the
// real server to success and through its error answers, and validates
// every answer (status, documented headers, body) against the document.
func TestResponsesFollowTheDocument(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) { testResponsesFollowTheDocument(t, storetest.DSN(t, kind)) })
	}
}

func testResponsesFollowTheDocument(t *testing.T, dsn string) {
	srv := servertest.Start(t, servertest.Options{Store: dsn})
	h := newHarness(t, srv)
	c := srv.Creds
	tokenHeaders := func(id, secret, instance string) map[string]string {
		return map[string]string{"X-IBM-Client-Id": id, "X-IBM-Client-Secret": secret, "x-ibm-instance-id": instance}
	}

	// ---- health and the document itself ----
	h.do(call{method: "GET", path: "/healthz", want: 200, conforms: true})
	h.do(call{method: "GET", path: "/readyz", want: 200, conforms: true})
	y := h.do(call{method: "GET", path: "/api/v1/openapi.yaml", want: 200, conforms: true})
	if string(y.body) != string(apispec.YAML()) {
		t.Error("GET /api/v1/openapi.yaml does not serve the embedded document")
	}
	j := h.do(call{method: "GET", path: "/api/v1/openapi.json", want: 200, conforms: true})
	if served, err := openapi3.NewLoader().LoadFromData(j.body); err != nil {
		t.Errorf("GET /api/v1/openapi.json does not load: %v", err)
	} else if served.Info.Title != h.doc.Info.Title || served.Paths.Len() != h.doc.Paths.Len() {
		t.Error("GET /api/v1/openapi.json is not the document")
	}

	// ---- App Connect token exchange ----
	admin := h.login("exchange", c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)
	h.do(call{label: "exchange with a wrong secret", method: "POST", path: "/api/v1/tokens",
		header: tokenHeaders(c.ClientID, "slcs_wrong", c.InstanceID), body: map[string]string{"apiKey": c.APIKey}, want: 401, conforms: true})
	h.do(call{label: "exchange without headers", method: "POST", path: "/api/v1/tokens",
		body: map[string]string{"apiKey": c.APIKey}, want: 401, rejects: true})
	h.do(call{label: "exchange with an unknown field", method: "POST", path: "/api/v1/tokens",
		header: tokenHeaders(c.ClientID, c.ClientSecret, c.InstanceID), body: map[string]any{"apiKey": c.APIKey, "scope": "x"}, want: 400, rejects: true})
	h.do(call{label: "exchange with apiKey a number", method: "POST", path: "/api/v1/tokens",
		header: tokenHeaders(c.ClientID, c.ClientSecret, c.InstanceID), body: map[string]any{"apiKey": 42}, want: 400, rejects: true})
	h.do(call{label: "exchange with broken JSON", method: "POST", path: "/api/v1/tokens",
		header: tokenHeaders(c.ClientID, c.ClientSecret, c.InstanceID), body: `{"apiKey":`, contentType: "application/json", want: 400, rejects: true})
	h.do(call{label: "exchange as text/plain", method: "POST", path: "/api/v1/tokens",
		header: tokenHeaders(c.ClientID, c.ClientSecret, c.InstanceID), body: `{"apiKey":"x"}`, contentType: "text/plain", want: 415, rejects: true})
	h.do(call{label: "exchange with a 2 MiB body", method: "POST", path: "/api/v1/tokens",
		header: tokenHeaders(c.ClientID, c.ClientSecret, c.InstanceID),
		body:   `{"apiKey":"` + strings.Repeat("a", 2<<20) + `"}`, contentType: "application/json", want: 413})

	// ---- who am I, and bearer authentication ----
	who := decode[map[string]any](t, h.do(call{method: "GET", path: "/api/v1/whoami", as: admin, want: 200, conforms: true}))
	if who["instanceId"] != c.InstanceID || who["role"] != "admin" {
		t.Errorf("whoami = %v", who)
	}
	h.do(call{label: "whoami without a token", method: "GET", path: "/api/v1/whoami", want: 401, rejects: true})
	h.do(call{label: "whoami with a forged token", method: "GET", path: "/api/v1/whoami",
		header: map[string]string{"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30.", "X-IBM-Client-Id": c.ClientID}, want: 401, conforms: true})
	h.do(call{label: "whoami with another client id", method: "GET", path: "/api/v1/whoami",
		header: map[string]string{"Authorization": "Bearer " + admin.Token, "X-IBM-Client-Id": "0123456789abcdef0123456789abcdef"}, want: 401, conforms: true})

	// ---- users ----
	h.do(call{method: "POST", path: "/api/v1/users", as: admin, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "alice"}, "spec": map[string]any{"role": "developer", "description": "dev", "password": "correct-horse-battery"}}})
	h.do(call{label: "create a taken user name", method: "POST", path: "/api/v1/users", as: admin, want: 409, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "alice"}, "spec": map[string]any{"role": "viewer"}}})
	h.do(call{label: "create a user with an unknown role", method: "POST", path: "/api/v1/users", as: admin, want: 400, rejects: true,
		body: map[string]any{"metadata": map[string]any{"name": "bob"}, "spec": map[string]any{"role": "root"}}})
	h.do(call{label: "create a user with an unknown field", method: "POST", path: "/api/v1/users", as: admin, want: 400, rejects: true,
		body: map[string]any{"metadata": map[string]any{"name": "bob"}, "spec": map[string]any{"role": "viewer", "email": "b@example.com"}}})
	h.do(call{label: "create a user with a short password", method: "POST", path: "/api/v1/users", as: admin, want: 400, rejects: true,
		body: map[string]any{"metadata": map[string]any{"name": "bob"}, "spec": map[string]any{"role": "viewer", "password": "short"}}})
	h.do(call{label: "create a user with a bad name", method: "POST", path: "/api/v1/users", as: admin, want: 400, rejects: true,
		body: map[string]any{"metadata": map[string]any{"name": "bob smith!"}, "spec": map[string]any{"role": "viewer"}}})
	h.do(call{label: "create a user with a 33-character name", method: "POST", path: "/api/v1/users", as: admin, want: 400, rejects: true,
		body: map[string]any{"metadata": map[string]any{"name": strings.Repeat("b", 33)}, "spec": map[string]any{"role": "viewer"}}})
	h.do(call{label: "create a user without a name", method: "POST", path: "/api/v1/users", as: admin, want: 400, rejects: true,
		body: map[string]any{"spec": map[string]any{"role": "viewer"}}})
	h.do(call{label: "create a user as text/plain", method: "POST", path: "/api/v1/users", as: admin, want: 415, rejects: true,
		body: `{"metadata":{"name":"bob"},"spec":{"role":"viewer"}}`, contentType: "text/plain"})
	h.do(call{label: "create a user with an empty body", method: "POST", path: "/api/v1/users", as: admin, want: 400, rejects: true,
		body: "", contentType: "application/json"})
	h.do(call{method: "GET", path: "/api/v1/users", as: admin, want: 200, conforms: true})
	alice := h.do(call{method: "GET", path: "/api/v1/users/alice", as: admin, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/users/nobody", as: admin, want: 404, conforms: true})
	// A GET answer, edited and PUT back whole, is accepted by both.
	var aliceObj map[string]any
	_ = json.Unmarshal(alice.body, &aliceObj)
	aliceObj["spec"].(map[string]any)["description"] = "edited"
	h.do(call{label: "PUT back an edited GET answer", method: "PUT", path: "/api/v1/users/alice", as: admin, body: aliceObj, want: 200, conforms: true})
	h.do(call{label: "PUT a new user", method: "PUT", path: "/api/v1/users/bob", as: admin, want: 201, conforms: true,
		body: map[string]any{"spec": map[string]any{"role": "viewer"}}})
	h.do(call{label: "PUT with a name that differs from the path", method: "PUT", path: "/api/v1/users/bob", as: admin, want: 400,
		body: map[string]any{"metadata": map[string]any{"name": "carol"}, "spec": map[string]any{"role": "viewer"}}})
	h.do(call{label: "PUT a user without spec.role", method: "PUT", path: "/api/v1/users/bob", as: admin, want: 400, rejects: true,
		body: map[string]any{"spec": map[string]any{"description": "x"}}})
	h.do(call{label: "delete yourself", method: "DELETE", path: "/api/v1/users/admin", as: admin, want: 400, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/users/bob", as: admin, want: 204, conforms: true})
	h.do(call{label: "delete a deleted user", method: "DELETE", path: "/api/v1/users/bob", as: admin, want: 404, conforms: true})

	// ---- service IDs ----
	h.do(call{method: "POST", path: "/api/v1/service-ids", as: admin, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "ci"}, "spec": map[string]any{"role": "developer", "description": "pipeline"}}})
	h.do(call{label: "create a taken service ID name", method: "POST", path: "/api/v1/service-ids", as: admin, want: 409, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "ci"}, "spec": map[string]any{"role": "developer"}}})
	h.do(call{label: "create a service ID with a password", method: "POST", path: "/api/v1/service-ids", as: admin, want: 400, rejects: true,
		body: map[string]any{"metadata": map[string]any{"name": "ci2"}, "spec": map[string]any{"role": "developer", "password": "a-long-enough-password"}}})
	h.do(call{method: "GET", path: "/api/v1/service-ids", as: admin, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/service-ids/ci", as: admin, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/service-ids/none", as: admin, want: 404, conforms: true})
	h.do(call{method: "PUT", path: "/api/v1/service-ids/ci", as: admin, want: 200, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "ci"}, "spec": map[string]any{"role": "developer", "description": "changed"}}})
	h.do(call{method: "PUT", path: "/api/v1/service-ids/tmp", as: admin, want: 201, conforms: true,
		body: map[string]any{"spec": map[string]any{"role": "viewer"}}})
	h.do(call{method: "DELETE", path: "/api/v1/service-ids/tmp", as: admin, want: 204, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/service-ids/tmp", as: admin, want: 404, conforms: true})

	// ---- API keys ----
	own := decode[object](t, h.do(call{method: "POST", path: "/api/v1/api-keys", as: admin, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "laptop"}, "spec": map[string]any{"description": "mine"}}}))
	h.do(call{label: "API key for a service ID, with expiry", method: "POST", path: "/api/v1/api-keys", as: admin, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "deploy"}, "spec": map[string]any{"owner": map[string]any{"kind": "serviceId", "name": "ci"}, "expiresAt": "2099-01-01T00:00:00Z"}}})
	h.do(call{label: "API key with a taken name", method: "POST", path: "/api/v1/api-keys", as: admin, want: 409, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "laptop"}}})
	h.do(call{label: "API key for a missing owner", method: "POST", path: "/api/v1/api-keys", as: admin, want: 404, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "x"}, "spec": map[string]any{"owner": map[string]any{"kind": "user", "name": "ghost"}}}})
	h.do(call{label: "API key with an expiry in the past", method: "POST", path: "/api/v1/api-keys", as: admin, want: 400, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "old"}, "spec": map[string]any{"expiresAt": "2001-01-01T00:00:00Z"}}})
	h.do(call{label: "API key without a name", method: "POST", path: "/api/v1/api-keys", as: admin, want: 400, rejects: true,
		body: map[string]any{"spec": map[string]any{"description": "nameless"}}})
	h.do(call{label: "API key with an unknown owner kind", method: "POST", path: "/api/v1/api-keys", as: admin, want: 400, rejects: true,
		body: map[string]any{"metadata": map[string]any{"name": "y"}, "spec": map[string]any{"owner": map[string]any{"kind": "robot", "name": "ci"}}}})
	h.do(call{method: "GET", path: "/api/v1/api-keys", as: admin, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/api-keys/" + own.Metadata.ID, as: admin, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/api-keys/ak-0000000000000000", as: admin, want: 404, conforms: true})
	h.do(call{method: "POST", path: "/api/v1/api-keys/" + own.Metadata.ID + "/lock", as: admin, want: 200, conforms: true})
	h.do(call{label: "exchange a locked key", method: "POST", path: "/api/v1/tokens",
		header: tokenHeaders(c.ClientID, c.ClientSecret, c.InstanceID), body: map[string]string{"apiKey": own.Key}, want: 401, conforms: true})
	h.do(call{method: "POST", path: "/api/v1/api-keys/" + own.Metadata.ID + "/unlock", as: admin, want: 200, conforms: true})
	h.do(call{method: "POST", path: "/api/v1/api-keys/ak-0000000000000000/lock", as: admin, want: 404, conforms: true})
	h.do(call{method: "POST", path: "/api/v1/api-keys/ak-0000000000000000/unlock", as: admin, want: 404, conforms: true})

	// A viewer: what the role table and the service refuse.
	h.do(call{method: "POST", path: "/api/v1/users", as: admin, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "vera"}, "spec": map[string]any{"role": "viewer"}}})
	veraKey := decode[object](t, h.do(call{label: "API key for vera", method: "POST", path: "/api/v1/api-keys", as: admin, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "vera"}, "spec": map[string]any{"owner": map[string]any{"kind": "user", "name": "vera"}}}}))
	vera := h.login("exchange as vera", c.ClientID, c.ClientSecret, c.InstanceID, veraKey.Key)
	h.do(call{label: "viewer reads herself", method: "GET", path: "/api/v1/users/vera", as: vera, want: 200, conforms: true})
	h.do(call{label: "viewer reads another user", method: "GET", path: "/api/v1/users/alice", as: vera, want: 403, conforms: true})
	h.do(call{label: "viewer lists users", method: "GET", path: "/api/v1/users", as: vera, want: 403, conforms: true})
	h.do(call{label: "viewer creates a user", method: "POST", path: "/api/v1/users", as: vera, want: 403, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "mallory"}, "spec": map[string]any{"role": "admin"}}})
	h.do(call{label: "viewer replaces a user", method: "PUT", path: "/api/v1/users/vera", as: vera, want: 403, conforms: true,
		body: map[string]any{"spec": map[string]any{"role": "admin"}}})
	h.do(call{label: "viewer deletes a user", method: "DELETE", path: "/api/v1/users/alice", as: vera, want: 403, conforms: true})
	h.do(call{label: "viewer lists service IDs", method: "GET", path: "/api/v1/service-ids", as: vera, want: 403, conforms: true})
	h.do(call{label: "viewer makes a key for someone else", method: "POST", path: "/api/v1/api-keys", as: vera, want: 403, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "sneaky"}, "spec": map[string]any{"owner": map[string]any{"kind": "user", "name": "admin"}}}})
	h.do(call{label: "viewer makes her own key", method: "POST", path: "/api/v1/api-keys", as: vera, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "vera2"}}})
	keys := decode[struct{ APIKeys []object }](t, h.do(call{label: "viewer lists keys", method: "GET", path: "/api/v1/api-keys", as: vera, want: 200, conforms: true}))
	if len(keys.APIKeys) != 2 {
		t.Errorf("a viewer sees %d keys, want her own 2", len(keys.APIKeys))
	}
	h.do(call{label: "viewer reads the admin's key", method: "GET", path: "/api/v1/api-keys/" + own.Metadata.ID, as: vera, want: 404, conforms: true})
	h.do(call{label: "viewer locks the admin's key", method: "POST", path: "/api/v1/api-keys/" + own.Metadata.ID + "/lock", as: vera, want: 404, conforms: true})
	h.do(call{label: "viewer deletes the admin's key", method: "DELETE", path: "/api/v1/api-keys/" + own.Metadata.ID, as: vera, want: 404, conforms: true})
	h.do(call{label: "viewer lists credentials", method: "GET", path: "/api/v1/credentials", as: vera, want: 403, conforms: true})
	h.do(call{label: "viewer reads the audit", method: "GET", path: "/api/v1/audit", as: vera, want: 403, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/api-keys/" + own.Metadata.ID, as: admin, want: 204, conforms: true})
	h.do(call{label: "delete a deleted key", method: "DELETE", path: "/api/v1/api-keys/" + own.Metadata.ID, as: admin, want: 404, conforms: true})

	// ---- public API credentials ----
	inst := decode[object](t, h.do(call{method: "POST", path: "/api/v1/credentials", as: admin, want: 201, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "pipeline"}, "spec": map[string]any{"description": "CI"}}}))
	app := decode[object](t, h.do(call{label: "application credential of a service ID", method: "PUT", path: "/api/v1/credentials/ci-app", as: admin, want: 201, conforms: true,
		body: map[string]any{"spec": map[string]any{"owner": map[string]any{"kind": "serviceId", "name": "ci"}}}}))
	h.do(call{label: "credential with a taken name", method: "POST", path: "/api/v1/credentials", as: admin, want: 409, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "pipeline"}}})
	h.do(call{label: "credential of a missing owner", method: "POST", path: "/api/v1/credentials", as: admin, want: 404, conforms: true,
		body: map[string]any{"metadata": map[string]any{"name": "ghost"}, "spec": map[string]any{"owner": map[string]any{"kind": "user", "name": "ghost"}}}})
	h.do(call{label: "credential without a name", method: "POST", path: "/api/v1/credentials", as: admin, want: 400, rejects: true,
		body: map[string]any{"spec": map[string]any{"description": "nameless"}}})
	h.do(call{label: "service ID without a name", method: "POST", path: "/api/v1/service-ids", as: admin, want: 400, rejects: true,
		body: map[string]any{"metadata": map[string]any{}, "spec": map[string]any{"role": "viewer"}}})
	h.do(call{label: "credential with an unknown field", method: "POST", path: "/api/v1/credentials", as: admin, want: 400, rejects: true,
		body: map[string]any{"metadata": map[string]any{"name": "z"}, "spec": map[string]any{"secret": "mine"}}})
	h.do(call{label: "credential owner change", method: "PUT", path: "/api/v1/credentials/ci-app", as: admin, want: 400, conforms: true,
		body: map[string]any{"spec": map[string]any{"owner": map[string]any{"kind": "user", "name": "alice"}}}})
	h.do(call{label: "credential description change", method: "PUT", path: "/api/v1/credentials/pipeline", as: admin, want: 200, conforms: true,
		body: map[string]any{"spec": map[string]any{"description": "CI, rotated soon"}}})
	h.do(call{method: "GET", path: "/api/v1/credentials", as: admin, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/credentials/pipeline", as: admin, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/credentials/none", as: admin, want: 404, conforms: true})
	h.do(call{method: "PUT", path: "/api/v1/credentials/short-lived", as: admin, want: 201, conforms: true, body: map[string]any{}})
	h.do(call{method: "DELETE", path: "/api/v1/credentials/short-lived", as: admin, want: 204, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/credentials/short-lived", as: admin, want: 404, conforms: true})

	// ---- configurations ----
	b64 := base64.StdEncoding.EncodeToString
	cfg := func(name, typ, data string) map[string]any {
		spec := map[string]any{"type": typ, "description": name + " of the tests"}
		if data != "" {
			spec["data"] = data
		}
		return map[string]any{"metadata": map[string]any{"name": name}, "spec": spec}
	}
	h.do(call{method: "GET", path: "/api/v1/configuration-types", as: vera, want: 200, conforms: true})
	h.do(call{method: "POST", path: "/api/v1/configurations", as: admin, want: 201, conforms: true,
		body: cfg("db", "setdbparms", b64([]byte("jdbc::orders app pa55word\n")))})
	h.do(call{label: "configuration with a taken name", method: "POST", path: "/api/v1/configurations", as: admin, want: 409, conforms: true,
		body: cfg("db", "setdbparms", b64([]byte("jdbc::orders app pa55word\n")))})
	h.do(call{label: "configuration without a name", method: "POST", path: "/api/v1/configurations", as: admin, want: 400, rejects: true,
		body: map[string]any{"spec": map[string]any{"type": "serverconf", "data": b64([]byte("Defaults: {}\n"))}}})
	h.do(call{label: "configuration of an unknown type", method: "POST", path: "/api/v1/configurations", as: admin, want: 400, conforms: true,
		body: cfg("odd", "nosuchtype", b64([]byte("x")))})
	h.do(call{label: "configuration whose data does not fit its type", method: "POST", path: "/api/v1/configurations", as: admin, want: 400, conforms: true,
		body: cfg("odd", "serverconf", b64([]byte("- a list, not a mapping\n")))})
	h.do(call{label: "configuration data that is not base64", method: "POST", path: "/api/v1/configurations", as: admin, want: 400, conforms: true,
		body: cfg("odd", "serverconf", "*not base64*")})
	h.do(call{label: "configuration as text/plain", method: "POST", path: "/api/v1/configurations", as: admin, want: 415, rejects: true,
		body: `{"metadata":{"name":"odd"},"spec":{"type":"serverconf"}}`, contentType: "text/plain"})
	h.do(call{label: "viewer writes a configuration", method: "PUT", path: "/api/v1/configurations/db", as: vera, want: 403, conforms: true,
		body: cfg("db", "setdbparms", "")})
	h.do(call{label: "viewer lists configurations", method: "GET", path: "/api/v1/configurations", as: vera, want: 200, conforms: true})
	h.do(call{method: "POST", path: "/api/v1/configurations", as: admin, want: 201, conforms: true,
		body: cfg("paging", "serverconf", b64([]byte("Defaults: {}\n")))})
	page := h.do(call{label: "one page of configurations", method: "GET", path: "/api/v1/configurations?limit=1", as: vera, want: 200, conforms: true})
	if next := decode[struct{ Metadata struct{ Continue string } }](t, page).Metadata.Continue; next == "" {
		t.Errorf("a page of one of two configurations has no metadata.continue: %s", page.body)
	} else {
		h.do(call{label: "the next page of configurations", method: "GET", path: "/api/v1/configurations?limit=1&continue=" + url.QueryEscape(next), as: vera, want: 200, conforms: true})
		h.do(call{label: "a configurations token on the API keys", method: "GET", path: "/api/v1/api-keys?continue=" + url.QueryEscape(next), as: vera, want: 400, conforms: true})
	}
	h.do(call{label: "a page size out of range", method: "GET", path: "/api/v1/configurations?limit=1001", as: vera, want: 400, rejects: true})
	h.do(call{method: "GET", path: "/api/v1/configurations/db", as: vera, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/configurations/none", as: admin, want: 404, conforms: true})
	h.do(call{label: "configuration description change, data kept", method: "PUT", path: "/api/v1/configurations/db", as: admin, want: 200, conforms: true,
		body: cfg("db", "setdbparms", "")})
	h.do(call{method: "PUT", path: "/api/v1/configurations/settings", as: admin, want: 201, conforms: true,
		body: cfg("settings", "serverconf", b64([]byte("values:\n  backendURL: http://127.0.0.1:9\n")))})
	h.do(call{method: "DELETE", path: "/api/v1/configurations/settings", as: admin, want: 204, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/configurations/settings", as: admin, want: 404, conforms: true})

	// ---- BAR files ----
	barBytes := buildBAR(t, "hello")
	octet := "application/octet-stream"
	h.do(call{label: "upload a BAR", method: "PUT", path: "/api/v1/bar-files/hello", as: admin, body: barBytes, contentType: octet, want: 201, conforms: true})
	bf := decode[map[string]any](t, h.do(call{label: "upload it again", method: "PUT", path: "/api/v1/bar-files/hello", as: admin, body: barBytes, contentType: octet, want: 200, conforms: true}))
	h.do(call{label: "upload something that is not a BAR", method: "PUT", path: "/api/v1/bar-files/junk", as: admin, body: []byte("this is not a zip archive"), contentType: octet, want: 422, conforms: true})
	h.do(call{label: "upload a BAR as JSON", method: "PUT", path: "/api/v1/bar-files/hello", as: admin, body: barBytes, contentType: "application/json", want: 415, rejects: true})
	h.do(call{label: "viewer uploads a BAR", method: "PUT", path: "/api/v1/bar-files/mine", as: vera, body: barBytes, contentType: octet, want: 403, conforms: true})
	h.do(call{label: "viewer lists BAR files", method: "GET", path: "/api/v1/bar-files", as: vera, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/bar-files/hello", as: admin, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/bar-files/none", as: admin, want: 404, conforms: true})
	dl := h.do(call{method: "GET", path: "/api/v1/bar-files/hello/content", as: admin, want: 200, conforms: true})
	if !bytes.Equal(dl.body, barBytes) {
		t.Errorf("the downloaded BAR differs from the uploaded one (%d bytes, want %d)", len(dl.body), len(barBytes))
	}
	if u, _ := bf["url"].(string); !strings.HasPrefix(u, srv.URL+"/api/v1/bar-files/hello") {
		t.Errorf("BAR url %v does not point at this control plane", bf["url"])
	}
	h.do(call{label: "download a current copy", method: "GET", path: "/api/v1/bar-files/hello/content", as: admin, want: 304, conforms: true,
		header: map[string]string{"If-None-Match": dl.header.Get("ETag")}})
	h.do(call{method: "GET", path: "/api/v1/bar-files/none/content", as: admin, want: 404, conforms: true})
	barURL, _ := bf["url"].(string)

	// ---- integration runtimes (stopped: the contract, not the processes) ----
	rt := func(name string, replicas int, bars ...string) map[string]any {
		return map[string]any{"metadata": map[string]any{"name": name},
			"spec": map[string]any{"barURL": bars, "configurations": []string{"db"}, "replicas": replicas, "version": "13.0"}}
	}
	h.do(call{method: "PUT", path: "/api/v1/integration-runtimes/web", as: admin, body: rt("web", 0, barURL), want: 201, conforms: true})
	h.do(call{label: "runtime with a taken name", method: "POST", path: "/api/v1/integration-runtimes", as: admin, body: rt("web", 0, barURL), want: 409, conforms: true})
	h.do(call{label: "runtime without BAR files", method: "POST", path: "/api/v1/integration-runtimes", as: admin, body: rt("empty", 0), want: 400, rejects: true})
	h.do(call{label: "runtime with too many replicas", method: "POST", path: "/api/v1/integration-runtimes", as: admin, body: rt("big", 99, barURL), want: 400, rejects: true})
	missing := h.do(call{label: "runtime naming a missing BAR file", method: "POST", path: "/api/v1/integration-runtimes", as: admin,
		body: rt("lost", 0, srv.URL+"/api/v1/bar-files/nosuch/content"), conforms: true})
	if missing.status == 201 {
		// Accepted today: the reconciler reports the missing BAR in the
		// runtime's status instead.
		t.Logf("a runtime naming a missing BAR file was accepted: %s", missing.body)
		h.do(call{method: "DELETE", path: "/api/v1/integration-runtimes/lost", as: admin, want: 204, conforms: true})
	}
	h.do(call{label: "viewer writes a runtime", method: "PUT", path: "/api/v1/integration-runtimes/web", as: vera, body: rt("web", 0, barURL), want: 403, conforms: true})
	h.do(call{label: "viewer lists runtimes", method: "GET", path: "/api/v1/integration-runtimes", as: vera, want: 200, conforms: true})
	web := decode[map[string]any](t, h.do(call{method: "GET", path: "/api/v1/integration-runtimes/web", as: admin, want: 200, conforms: true}))
	h.do(call{method: "GET", path: "/api/v1/integration-runtimes/none", as: admin, want: 404, conforms: true})
	// A watch streams every runtime once at the start: read that event,
	// check its object against the document, hang up.
	for _, path := range []string{"/api/v1/integration-runtimes?watch=true", "/api/v1/integration-runtimes/web?watch=true"} {
		w := h.stream(call{label: "watch " + path, method: "GET", path: path, as: admin, want: 200, conforms: true},
			func(b []byte) bool { return bytes.Contains(b, []byte("\n\n")) })
		if ct := w.header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("watch %s: content type %q", path, ct)
		}
		event, _, _ := bytes.Cut(w.body, []byte("\n\n"))
		var data []byte
		for _, line := range bytes.Split(event, []byte("\n")) {
			if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				data = d
			}
		}
		if !bytes.HasPrefix(event, []byte("event: update\n")) || data == nil {
			t.Errorf("watch %s: first event %q is not an update with data", path, event)
			continue
		}
		h.validateSchema("watch "+path, "IntegrationRuntime", data)
	}
	web["spec"].(map[string]any)["version"] = "12.0"
	h.do(call{label: "PUT back an edited runtime", method: "PUT", path: "/api/v1/integration-runtimes/web", as: admin, body: web, want: 200, conforms: true})
	h.do(call{label: "delete a BAR file a runtime uses", method: "DELETE", path: "/api/v1/bar-files/hello", as: admin, want: 409, conforms: true})
	h.do(call{label: "delete a configuration a runtime uses", method: "DELETE", path: "/api/v1/configurations/db", as: admin, want: 409, conforms: true})
	h.do(call{label: "delete with force neither true nor false", method: "DELETE", path: "/api/v1/configurations/db?force=yes", as: admin, want: 400, rejects: true})
	h.do(call{label: "force-delete a configuration a runtime uses", method: "DELETE", path: "/api/v1/configurations/db?force=true", as: admin, want: 204, conforms: true})
	// Logs and traces need a runtime backend; a control plane without one
	// answers 503, which the document also covers.
	either := func(ex *exchange, want int) {
		if ex.status != want && ex.status != 503 {
			t.Errorf("%s: status %d, want %d (or 503 without a backend): %s", ex.label, ex.status, want, ex.body)
		}
	}
	either(h.do(call{method: "GET", path: "/api/v1/integration-runtimes/web/logs?tail=10", as: admin, conforms: true}), 200)
	either(h.do(call{label: "logs with a bad tail", method: "GET", path: "/api/v1/integration-runtimes/web/logs?tail=many", as: admin, rejects: true}), 400)
	trace := map[string]any{"spec": map[string]any{"integrationRuntimeName": "web", "type": "user"}}
	either(h.do(call{method: "PUT", path: "/api/v1/traces/t1", as: admin, body: trace, conforms: true}), 201)
	either(h.do(call{label: "trace of an unknown kind", method: "PUT", path: "/api/v1/traces/t2", as: admin, rejects: true,
		body: map[string]any{"spec": map[string]any{"integrationRuntimeName": "web", "type": "debug"}}}), 400)
	either(h.do(call{method: "GET", path: "/api/v1/traces?spec.integrationRuntimeName=web", as: admin, conforms: true}), 200)
	either(h.do(call{method: "GET", path: "/api/v1/traces/t1", as: admin, conforms: true}), 200)
	either(h.do(call{label: "download a trace of a stopped runtime", method: "GET", path: "/api/v1/traces/t1/download", as: admin, conforms: true}), 409)
	either(h.do(call{method: "DELETE", path: "/api/v1/traces/t1", as: admin, conforms: true}), 204)
	// The bundle endpoint opens only with the runtime's own token.
	bundle := "/internal/v1/runtimes/" + web["metadata"].(map[string]any)["uid"].(string) + "/generations/1/bundle"
	either(h.do(call{label: "bundle without a token", method: "GET", path: bundle, rejects: true}), 401)
	either(h.do(call{label: "bundle with a user's token", method: "GET", path: bundle, conforms: true,
		header: map[string]string{"Authorization": "Bearer " + admin.Token}}), 403)
	either(h.do(call{label: "bundle with a made-up runtime token", method: "GET", path: bundle, conforms: true,
		header: map[string]string{"Authorization": "Bearer slrt_0000000000000000000000000000000000000000"}}), 403)
	either(h.do(call{label: "bundle of a generation that is not a number", method: "GET", path: strings.Replace(bundle, "/1/", "/one/", 1), rejects: true,
		header: map[string]string{"Authorization": "Bearer " + admin.Token}}), 401)
	h.do(call{method: "DELETE", path: "/api/v1/integration-runtimes/web", as: admin, want: 204, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/integration-runtimes/web", as: admin, want: 404, conforms: true})
	h.do(call{method: "POST", path: "/api/v1/integration-runtimes", as: admin, body: rt("api", 0, barURL), want: 201, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/integration-runtimes/api", as: admin, want: 204, conforms: true})

	h.publishedAPIs(admin, vera, barURL)

	h.do(call{method: "DELETE", path: "/api/v1/bar-files/hello", as: admin, want: 204, conforms: true})
	h.do(call{method: "DELETE", path: "/api/v1/bar-files/hello", as: admin, want: 404, conforms: true})

	// ---- OAuth 2.0 ----
	meta := decode[map[string]any](t, h.do(call{method: "GET", path: "/.well-known/oauth-authorization-server", want: 200, conforms: true}))
	if meta["issuer"] != srv.URL {
		t.Errorf("issuer %v, want %s", meta["issuer"], srv.URL)
	}
	h.do(call{method: "GET", path: "/oauth/jwks", want: 200, conforms: true})
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	cc := decode[struct {
		AccessToken string `json:"access_token"`
	}](t, h.do(call{label: "client_credentials, basic", method: "POST", path: "/oauth/token", basic: []string{app.ClientID, app.ClientSecret},
		body: form("grant_type", "client_credentials"), want: 200, conforms: true}))
	h.do(call{label: "client_credentials, post", method: "POST", path: "/oauth/token",
		body: form("grant_type", "client_credentials", "client_id", app.ClientID, "client_secret", app.ClientSecret), want: 200, conforms: true})
	h.do(call{label: "api-key grant", method: "POST", path: "/oauth/token", basic: []string{inst.ClientID, inst.ClientSecret},
		body: form("grant_type", "urn:sluice:params:oauth:grant-type:api-key", "api_key", c.APIKey), want: 200, conforms: true})
	h.do(call{label: "client_credentials with an instance credential", method: "POST", path: "/oauth/token", basic: []string{inst.ClientID, inst.ClientSecret},
		body: form("grant_type", "client_credentials"), want: 400, conforms: true})
	h.do(call{label: "client_credentials with a wrong secret", method: "POST", path: "/oauth/token", basic: []string{app.ClientID, "slcs_wrong"},
		body: form("grant_type", "client_credentials"), want: 401, conforms: true})
	h.do(call{label: "token request without client authentication", method: "POST", path: "/oauth/token",
		body: form("grant_type", "client_credentials"), want: 401, conforms: true})
	h.do(call{label: "unsupported grant type", method: "POST", path: "/oauth/token", basic: []string{app.ClientID, app.ClientSecret},
		body: form("grant_type", "password", "username", "a", "password", "b"), want: 400, rejects: true})
	h.do(call{label: "token request without grant_type", method: "POST", path: "/oauth/token", basic: []string{app.ClientID, app.ClientSecret},
		body: form(), want: 400, rejects: true})
	h.do(call{label: "token request as JSON", method: "POST", path: "/oauth/token", basic: []string{app.ClientID, app.ClientSecret},
		body: map[string]string{"grant_type": "client_credentials"}, want: 400, rejects: true})
	active := decode[map[string]any](t, h.do(call{label: "introspect an active token", method: "POST", path: "/oauth/introspect", basic: []string{app.ClientID, app.ClientSecret},
		body: form("token", cc.AccessToken), want: 200, conforms: true}))
	if active["active"] != true {
		t.Errorf("introspection of a fresh token: %v", active)
	}
	inactive := h.do(call{label: "introspect garbage", method: "POST", path: "/oauth/introspect", basic: []string{app.ClientID, app.ClientSecret},
		body: form("token", "not-a-token"), want: 200, conforms: true})
	if strings.TrimSpace(string(inactive.body)) != `{"active":false}` {
		t.Errorf("introspection of garbage = %s, want exactly {\"active\":false}", inactive.body)
	}
	h.do(call{label: "introspect without client authentication", method: "POST", path: "/oauth/introspect",
		body: form("token", cc.AccessToken), want: 401, conforms: true})
	appClient := &servertest.Client{ClientID: app.ClientID, Token: cc.AccessToken}
	h.do(call{label: "whoami with a client_credentials token", method: "GET", path: "/api/v1/whoami", as: appClient, want: 200, conforms: true})
	h.do(call{label: "revoke", method: "POST", path: "/oauth/revoke", basic: []string{app.ClientID, app.ClientSecret},
		body: form("token", cc.AccessToken, "token_type_hint", "access_token"), want: 200, conforms: true})
	h.do(call{label: "revoke garbage", method: "POST", path: "/oauth/revoke", basic: []string{app.ClientID, app.ClientSecret},
		body: form("token", "not-a-token"), want: 200, conforms: true})
	h.do(call{label: "revoke without a token", method: "POST", path: "/oauth/revoke", basic: []string{app.ClientID, app.ClientSecret},
		body: form(), want: 400, rejects: true})
	h.do(call{label: "revoke without client authentication", method: "POST", path: "/oauth/revoke",
		body: form("token", cc.AccessToken), want: 401, conforms: true})
	h.do(call{label: "whoami with a revoked token", method: "GET", path: "/api/v1/whoami", as: appClient, want: 401, conforms: true})
	revoked := h.do(call{label: "introspect a revoked token", method: "POST", path: "/oauth/introspect", basic: []string{app.ClientID, app.ClientSecret},
		body: form("token", cc.AccessToken), want: 200, conforms: true})
	if strings.TrimSpace(string(revoked.body)) != `{"active":false}` {
		t.Errorf("introspection of a revoked token = %s, want exactly {\"active\":false}", revoked.body)
	}

	// ---- audit ----
	h.do(call{method: "GET", path: "/api/v1/audit", as: admin, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/audit?limit=5&actor=user:admin&since=2020-01-01T00:00:00Z&until=2099-01-01T00:00:00Z", as: admin, want: 200, conforms: true})
	h.do(call{label: "audit with limit 0", method: "GET", path: "/api/v1/audit?limit=0", as: admin, want: 400, rejects: true})
	h.do(call{label: "audit with a bad time", method: "GET", path: "/api/v1/audit?since=yesterday", as: admin, want: 400})

	// ---- the egress allow-list (admins) ----
	h.do(call{label: "egress allow-list, none set", method: "GET", path: "/api/v1/egress-policy", as: admin, want: 200, conforms: true})
	h.do(call{label: "viewer reads the egress allow-list", method: "GET", path: "/api/v1/egress-policy", as: vera, want: 403, conforms: true})
	h.do(call{label: "viewer sets the egress allow-list", method: "PUT", path: "/api/v1/egress-policy", as: vera, want: 403, conforms: true,
		body: map[string]any{"allow": []string{"127.0.0.1:9"}}})
	h.do(call{label: "egress entry that is not an address or a name", method: "PUT", path: "/api/v1/egress-policy", as: admin, want: 400, conforms: true,
		body: map[string]any{"allow": []string{"127.0.0.1:9", "10.0.0.0/40"}}})
	h.do(call{label: "egress allow-list without allow", method: "PUT", path: "/api/v1/egress-policy", as: admin, want: 400, rejects: true,
		body: map[string]any{}})
	h.do(call{label: "set the egress allow-list", method: "PUT", path: "/api/v1/egress-policy", as: admin, want: 200, conforms: true,
		body: map[string]any{"allow": []string{"127.0.0.1:9", "backend.internal", "127.0.0.1:9"}}})
	if got := decode[map[string][]string](t, h.do(call{method: "GET", path: "/api/v1/egress-policy", as: admin, want: 200, conforms: true})); strings.Join(got["allow"], ",") != "127.0.0.1:9,backend.internal" {
		t.Errorf("egress allow-list read back as %v", got)
	}

	// ---- every secured operation refuses a call without a token ----
	for _, op := range operations(h.doc) {
		method, path, _ := strings.Cut(op, " ")
		o := h.doc.Paths.Value(path).GetOperation(method)
		sec := h.doc.Security
		if o.Security != nil {
			sec = *o.Security
		}
		needsBearer := false
		for _, req := range sec {
			if _, ok := req["bearerAuth"]; ok {
				needsBearer = true
			}
		}
		if !needsBearer {
			continue
		}
		p := strings.NewReplacer("{name}", "alice", "{id}", "ak-0000000000000000").Replace(path)
		h.do(call{label: op + " without a token", method: method, path: p, want: 401})
	}

	appsCalls(t, h, admin, vera)
	h.requireCoverage(304, 400, 401, 403, 404, 409, 413, 415, 422)
}

// TestRateLimitAnswersFollowTheDocument drives a server with a tiny limit
// over it, on the token exchange and on an authenticated call.
func TestRateLimitAnswersFollowTheDocument(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--rate-limit-client", "3/1h"}})
	h := newHarness(t, srv)
	c := srv.Creds
	admin := h.login("exchange", c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)
	h.do(call{method: "GET", path: "/api/v1/whoami", as: admin, want: 200, conforms: true})
	h.do(call{method: "GET", path: "/api/v1/api-keys", as: admin, want: 200, conforms: true})
	over := h.do(call{label: "whoami over the limit", method: "GET", path: "/api/v1/whoami", as: admin, want: 429, conforms: true})
	h.do(call{label: "exchange over the limit", method: "POST", path: "/api/v1/tokens",
		header: map[string]string{"X-IBM-Client-Id": c.ClientID, "X-IBM-Client-Secret": c.ClientSecret, "x-ibm-instance-id": c.InstanceID},
		body:   map[string]string{"apiKey": c.APIKey}, want: 429, conforms: true})
	if over.header.Get("Retry-After") == "" || over.header.Get("RateLimit") == "" || over.header.Get("RateLimit-Policy") == "" {
		t.Errorf("429 without Retry-After, RateLimit and RateLimit-Policy: %v", over.header)
	}
	for _, ex := range h.log {
		if strings.HasPrefix(ex.label, "GET /api/v1/") && ex.header.Get("RateLimit-Policy") == "" {
			t.Errorf("%s: no RateLimit-Policy header", ex.label)
		}
	}
}

// buildBAR packages one of the examples with `sluice bar build`, as a
// developer would.
func buildBAR(t *testing.T, example string) []byte {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(self), "..", "..", "examples", example)
	out := filepath.Join(t.TempDir(), example+".bar")
	if b, err := exec.Command(servertest.Binary(t), "bar", "build", dir, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("sluice bar build %s: %v\n%s", dir, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
