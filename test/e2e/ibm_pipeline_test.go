package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// teaPolicyXML is the pipeline's TEAJDBC policy, aimed at the machine's
// PostgreSQL.
const teaPolicyXML = `<?xml version="1.0" encoding="UTF-8"?>
<policies>
  <policy policyType="JDBCProviders" policyName="TEAJDBC" policyTemplate="PostgreSQL">
    <databaseName>test</databaseName>
    <databaseType>PostgreSQL</databaseType>
    <type4DriverClassName>org.postgresql.Driver</type4DriverClassName>
    <connectionUrlFormat>jdbc:postgresql://[serverName]:[portNumber]/[databaseName]?user=[user]&amp;password=[password]</connectionUrlFormat>
    <portNumber>5432</portNumber>
    <serverName>127.0.0.1</serverName>
    <securityIdentity>tea</securityIdentity>
  </policy>
  <policy policyType="MQEndpoint" policyName="TEAMQ">
    <queueManagerName>QM1</queueManagerName>
  </policy>
</policies>
`

// IBM's demo pipeline (appconnect-api.md §6.1), call for call: token,
// policy project, setdbparms, serverconf naming the default policy
// project, BAR, runtime — with the GitHub Action's 404 check before the
// create and its supportsTraceCustomResource check after. Every call must
// succeed, the runtime must become Ready, and its flow's sql step must
// reach PostgreSQL through the TEAJDBC policy and the jdbc::tea
// credentials.
func TestIBMPipelineSequence(t *testing.T) {
	db, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var suffix [4]byte
	rand.Read(suffix[:])
	table := "tea_" + hex.EncodeToString(suffix[:])
	if _, err := db.Exec(fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, name text)", table)); err != nil {
		t.Skipf("PostgreSQL at 127.0.0.1:5432 is not usable: %v", err)
	}
	defer db.Exec("DROP TABLE " + table)
	if _, err := db.Exec(fmt.Sprintf("INSERT INTO %s VALUES (1, 'Assam')", table)); err != nil {
		t.Fatal(err)
	}

	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t) // token: POST /api/v1/tokens
	b64 := base64.StdEncoding.EncodeToString
	must := func(want int, method, path string, body any) []byte {
		t.Helper()
		code, out := admin.Do(method, path, body)
		if code != want {
			t.Fatalf("%s %s: %d %s; want %d", method, path, code, out, want)
		}
		return out
	}
	// The GitHub Action looks first: 404, App Connect's body.
	if out := must(404, "GET", "/api/v1/integration-runtimes/tea-tekton-ir", nil); !strings.Contains(string(out), `"Internal error","code":404`) {
		t.Fatalf("404 body %s", out)
	}
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	for name, data := range map[string]string{
		"JDBCPolicies/TEAJDBC.policyxml": teaPolicyXML,
		"JDBCPolicies/policy.descriptor": `<?xml version="1.0" encoding="UTF-8"?><ns2:policyProjectDescriptor xmlns="http://com.ibm.etools.mft.descriptor.base" xmlns:ns2="http://com.ibm.etools.mft.descriptor.policyProject"><references/></ns2:policyProjectDescriptor>`,
	} {
		w, _ := zw.Create(name)
		io.WriteString(w, data)
	}
	zw.Close()
	cfg := func(name, typ string, data []byte) map[string]any {
		return map[string]any{"metadata": map[string]string{"name": name}, "spec": map[string]any{"type": typ, "data": b64(data)}}
	}
	must(201, "PUT", "/api/v1/configurations/tea-jdbc-policies", cfg("tea-jdbc-policies", "policyproject", zbuf.Bytes()))
	must(201, "PUT", "/api/v1/configurations/tea-jdbc-setdbparms", cfg("tea-jdbc-setdbparms", "setdbparms", []byte("jdbc::tea postgres notused\n")))
	must(201, "PUT", "/api/v1/configurations/tea-default-policy-project", cfg("tea-default-policy-project", "serverconf", []byte("Defaults:\n  policyProject: 'JDBCPolicies'\n")))

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "flows"), 0o755)
	os.WriteFile(filepath.Join(dir, "sluice.yaml"), []byte("name: tea\nversion: 1.0.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "flows", "tea.yaml"), []byte(fmt.Sprintf(`flow: tea
trigger:
  http:
    method: GET
    path: /tea/{id}
steps:
  - sql:
      connection: TEAJDBC
      query: 'SELECT id, name FROM %s WHERE id = :id'
      params: {id: '.params.id | tonumber'}
  - map: '{tea: .response.rows[0].name}'
`, table)), 0o644)
	content, _, err := bar.Build(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	url := putBAR(t, admin, "tea-tekton", content)

	must(201, "PUT", "/api/v1/integration-runtimes/tea-tekton-ir", map[string]any{
		"metadata": map[string]string{"name": "tea-tekton-ir"},
		"spec": map[string]any{
			"template":           map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "runtime"}}}},
			"barURL":             []string{url},
			"configurations":     []string{"tea-jdbc-policies", "tea-jdbc-setdbparms", "tea-default-policy-project"},
			"forceFlowBasicAuth": map[string]any{"enabled": true},
			"version":            "13.0",
			"replicas":           1,
		}})
	st := waitReady(t, admin, "tea-tekton-ir", 1)
	// The GitHub Action's second look: the runtime exists and says so.
	if out := must(200, "GET", "/api/v1/integration-runtimes/tea-tekton-ir", nil); !strings.Contains(string(out), `"supportsTraceCustomResource":true`) ||
		!strings.Contains(string(out), `tea-jdbc-policies: TEAMQ (MQEndpoint)`) {
		t.Fatalf("runtime: %s; want supportsTraceCustomResource and the MQEndpoint policy listed as ignored", out)
	}

	var cred struct{ Username, Password string }
	json.Unmarshal(must(200, "POST", "/api/v1/integration-runtimes/tea-tekton-ir/basic-auth", nil), &cred)
	req, _ := http.NewRequest("GET", strings.Replace(st.Status.Endpoints[0].URI, "{id}", "1", 1), nil)
	req.SetBasicAuth(cred.Username, cred.Password)
	for i := 0; ; i++ {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && string(body) != "" {
			if !strings.Contains(string(body), `"tea":"Assam"`) {
				t.Fatalf("flow answered %s; want the row read through TEAJDBC", body)
			}
			break
		}
		// The new basic credential reaches the runtime on its next gateway poll.
		if resp.StatusCode != 401 || i > 200 {
			t.Fatalf("flow: %d %s", resp.StatusCode, body)
		}
		waitABit()
	}
}

func waitABit() { time.Sleep(50 * time.Millisecond) }
