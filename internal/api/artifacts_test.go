package api_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

func cfgBody(name, typ, data string) map[string]any {
	spec := map[string]any{"type": typ, "description": "test"}
	if data != "" {
		spec["data"] = base64.StdEncoding.EncodeToString([]byte(data))
	}
	return obj(name, spec)
}

func TestConfigurationsLifecycle(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	const canary = "canary-pw-7c1e9"
	if r := admin.call("PUT", "/api/v1/configurations/creds", cfgBody("creds", "setdbparms", "backend alice "+canary+"\n")); r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	if r := admin.call("POST", "/api/v1/configurations", cfgBody("creds", "setdbparms", "backend bob x\n")); r.code != 409 {
		t.Fatalf("POST on an existing name: %d %s", r.code, r.body)
	}
	// Base64 wrapped at 76 columns (as base64(1) writes it) is accepted.
	long := strings.Repeat("resourceXXXXXXXXXXXX user password\n", 1)
	wrapped := base64.StdEncoding.EncodeToString([]byte(long))
	wrapped = wrapped[:20] + "\n" + wrapped[20:]
	if r := admin.call("PUT", "/api/v1/configurations/wrapped", obj("wrapped", map[string]any{"type": "setdbparms", "data": wrapped})); r.code != 201 {
		t.Fatalf("wrapped base64: %d %s", r.code, r.body)
	}
	// GET shows type, description, size, times and authors; never data.
	r := admin.call("GET", "/api/v1/configurations/creds", nil)
	var got map[string]any
	r.json(t, &got)
	if strings.Contains(string(r.body), `"data"`) || strings.Contains(string(r.body), canary) {
		t.Fatalf("GET returns data: %s", r.body)
	}
	if got["spec"].(map[string]any)["type"] != "setdbparms" || got["status"].(map[string]any)["size"].(float64) != float64(len("backend alice "+canary+"\n")) {
		t.Fatalf("GET = %s", r.body)
	}
	// A GET edited and PUT back whole (no data) keeps the data.
	spec := got["spec"].(map[string]any)
	spec["description"] = "edited"
	if r := admin.call("PUT", "/api/v1/configurations/creds", got); r.code != 200 {
		t.Fatalf("PUT back whole: %d %s", r.code, r.body)
	}
	_, data, err := e.configs.Data(context.Background(), e.creds.InstanceID, "creds")
	if err != nil || !strings.Contains(string(data), canary) {
		t.Fatalf("data after PUT without data: %v", err)
	}
	r = admin.call("GET", "/api/v1/configurations", nil)
	if !strings.Contains(string(r.body), `"configurations":[`) || strings.Count(string(r.body), `"name":"`) != 2 {
		t.Fatalf("list: %s", r.body)
	}
	// Sealed at rest: the clear data is nowhere in the database file.
	if r := admin.call("DELETE", "/api/v1/configurations/creds", nil); r.code != 204 {
		t.Fatalf("delete: %d", r.code)
	}
	if r := admin.call("GET", "/api/v1/configurations/creds", nil); r.code != 404 {
		t.Fatalf("GET after delete: %d", r.code)
	}
	// The canary never reached a response, the log or the audit.
	audit := admin.call("GET", "/api/v1/audit?limit=1000", nil)
	for where, text := range map[string]string{"log": e.logs.String(), "audit": string(audit.body)} {
		if strings.Contains(text, canary) {
			t.Errorf("configuration data reached the %s", where)
		}
	}
	for _, action := range []string{"configuration.create", "configuration.update", "configuration.delete"} {
		if !strings.Contains(string(audit.body), action) {
			t.Errorf("audit lacks %s", action)
		}
	}
}

func TestConfigurationDataIsSealedAtRest(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	const canary = "canary-at-rest-55aa"
	admin.call("PUT", "/api/v1/configurations/c", cfgBody("c", "setdbparms", "r u "+canary))
	c, err := e.st.GetConfiguration(context.Background(), e.creds.InstanceID, "c")
	if err != nil || bytes.Contains(c.SealedData, []byte(canary)) || len(c.SealedData) == 0 {
		t.Fatalf("stored data is not sealed (err %v)", err)
	}
}

func zipOf(t *testing.T, files map[string]string) string {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range files {
		w, _ := zw.Create(name)
		w.Write([]byte(content))
	}
	zw.Close()
	return buf.String()
}

const testCert = `-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIQIRi6zePL6mKjOipn+dNuaTAKBggqhkjOPQQDAjASMRAw
DgYDVQQKEwdBY21lIENvMB4XDTE3MTAyMDE5NDMwNloXDTE4MTAyMDE5NDMwNlow
EjEQMA4GA1UEChMHQWNtZSBDbzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABD0d
7VNhbWvZLWPuj/RtHFjvtJBEwOkhbN/BnnE8rnZR8+sbwnc/KhCk3FhnpHZnQz7B
5aETbbIgmuvewdjvSBSjYzBhMA4GA1UdDwEB/wQEAwICpDATBgNVHSUEDDAKBggr
BgEFBQcDATAPBgNVHRMBAf8EBTADAQH/MCkGA1UdEQQiMCCCDmxvY2FsaG9zdDo1
NDUzgg4xMjcuMC4wLjE6NTQ1MzAKBggqhkjOPQQDAgNIADBFAiEA2zpJEPQyz6/l
Wf86aX6PepsntZv2GYlA5UpabfT2EZICICpJ5h/iI+i341gBmLiAFQOyTDT+/wQc
6MF9+Yw1Yy0t
-----END CERTIFICATE-----
`

func TestConfigurationTypesValidateTheirData(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	cases := []struct {
		typ, data string
		ok        bool
		says      string
	}{
		{"setdbparms", "jdbc::tea usr pwd\nmq::user1 app1 secret\n", true, ""},
		{"setdbparms", "mqsisetdbparms -n jdbc::tea -u usr -p pwd\n", true, ""},
		{"setdbparms", "ok u p\njustone\n", false, "line 2"},
		{"setdbparms", "a u p\na u q\n", false, "already defined on line 1"},
		{"serverconf", "log:\n  level: debug\nvalues:\n  backendURL: http://x\n", true, ""},
		{"serverconf", "log:\n  level: [\n", false, "YAML"},
		{"serverconf", "- a\n- b\n", false, "mapping"},
		{"serverconf", "log:\n  levl: debug\n", false, "line 2: unknown field"},
		{"barauth", `{"authType":"BASIC_AUTH","credentials":{"username":"u","password":"p"}}`, true, ""},
		{"barauth", `{"authType":"BEARER_TOKEN","credentials":{"token":"t"}}`, true, ""},
		{"barauth", `{"authType":"BASIC_AUTH","credentials":{"username":"u"}}`, false, "password"},
		{"barauth", `{"authType":"DIGEST"}`, false, "must be BASIC_AUTH"},
		{"barauth", `{"authType":"BASIC_AUTH",`, false, "not valid JSON"},
		{"barauth", `{"authType":"BASIC_AUTH","credentials":{"username":"u","password":"p","caCert":"nope"}}`, false, "caCert"},
		{"truststorecertificate", testCert, true, ""},
		{"truststorecertificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", false, "certificate"},
		{"truststorecertificate", "hello", false, "no PEM certificate"},
		{"generic", zipOf(t, map[string]string{"a.txt": "x"}), true, ""},
		{"generic", "not a zip", false, "zip"},
		{"generic", zipOf(t, map[string]string{"../evil": "x"}), false, "unsafe"},
		{"policyproject", zipOf(t, map[string]string{"db.yaml": "host: db\nport: 5432\n"}), true, ""},
		{"accounts", "accounts:\n  - name: a\n", true, ""},
		{"accounts", ": :\n  - [", false, "YAML"},
		{"truststore", "\xfe\xed\xfe\xed\x00\x00\x00\x02", true, ""},
		{"truststore", "plain text", false, "neither"},
		{"odbc", "[db]\nDriver = x\n", true, ""},
		{"odbc", "[db\n", false, "line 1"},
		{"workdiroverride", "anything", true, ""},
		{"nosuchtype", "x", false, "use one of"},
		{"setdbparms", "", false, "missing"},
	}
	for i, c := range cases {
		name := fmt.Sprintf("c%d", i)
		r := admin.call("PUT", "/api/v1/configurations/"+name, cfgBody(name, c.typ, c.data))
		if c.ok && r.code != 201 {
			t.Errorf("%s %q: %d %s", c.typ, c.data, r.code, r.body)
		}
		if !c.ok && (r.code != 400 || !strings.Contains(string(r.body), c.says)) {
			t.Errorf("%s %.40q: %d %s; want 400 saying %q", c.typ, c.data, r.code, r.body, c.says)
		}
	}
	r := admin.call("GET", "/api/v1/configuration-types", nil)
	for _, typ := range []string{"barauth", "setdbparms", "serverconf", "policyproject", "generic", "truststorecertificate", "truststore", "keystore", "accounts"} {
		if !strings.Contains(string(r.body), `"name":"`+typ+`"`) {
			t.Errorf("configuration-types lacks %s", typ)
		}
	}
}

func TestConfigurationBadInput(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	cases := []struct {
		body any
		want int
		says string
	}{
		{obj("x", map[string]any{"type": "setdbparms", "data": "!!!not base64"}), 400, "not valid base64"},
		{obj("x", map[string]any{"type": "setdbparms"}), 400, "spec.data is missing"},
		{obj("x", map[string]any{"data": "YQ=="}), 400, "spec.type is missing"},
		{obj(strings.Repeat("n", 33), map[string]any{"type": "setdbparms", "data": "YSBiIGM="}), 400, "33 characters"},
		{obj("x", map[string]any{"type": "setdbparms", "data": base64.StdEncoding.EncodeToString(make([]byte, 5<<20))}), 413, "larger than"},
		{`{"metadata":{"name":"x"},"spec":{"type":"setdbparms","data":"YSBiIGM=","extra":1}}`, 400, "unknown field"},
	}
	for _, c := range cases {
		r := admin.call("POST", "/api/v1/configurations", c.body)
		if r.code != c.want || !strings.Contains(string(r.body), c.says) {
			t.Errorf("%.80v: %d %s; want %d saying %q", c.body, r.code, r.body, c.want, c.says)
		}
	}
	if r := admin.call("GET", "/api/v1/configurations", nil); strings.Contains(string(r.body), `"name"`) {
		t.Fatalf("bad input stored something: %s", r.body)
	}
}

// buildExample builds one of the repository's example projects into a BAR.
func buildExample(t testing.TB, name string) []byte {
	t.Helper()
	b, _, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", name), nil)
	if err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	return b
}

func (c caller) putBAR(name string, content []byte, ctype string) resp {
	req := mustReq("PUT", c.e.url+"/api/v1/bar-files/"+name, bytes.NewReader(content))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("X-IBM-Client-Id", c.clientID)
	return c.e.do(req)
}

func TestBARFilesLifecycle(t *testing.T) {
	e := newEnv(t, envOpts{maxBAR: 64 << 10})
	admin := e.admin()
	hello := buildExample(t, "hello")
	r := admin.putBAR("hello", hello, "application/octet-stream")
	if r.code != 201 {
		t.Fatalf("upload: %d %s", r.code, r.body)
	}
	var up struct {
		Name, URL, SHA256 string
		Size              int64
		Flows             []map[string]any
		Endpoints         []map[string]any
		UploadedAt        string
	}
	r.json(t, &up)
	if up.URL != e.url+"/api/v1/bar-files/hello/content" || up.Size != int64(len(hello)) || len(up.SHA256) != 64 ||
		len(up.Flows) != 1 || len(up.Endpoints) != 1 || up.UploadedAt == "" {
		t.Fatalf("upload answer: %s", r.body)
	}
	// Invalid uploads are refused with file/line detail; the name keeps
	// its previous content.
	broken := zipOf(t, map[string]string{"sluice.yaml": "name: broken\nversion: 1.0.0\n", "flows/f.yaml": "flow: f\ntrigger:\n  http: {method: GET, path: /f}\nsteps:\n  - map: '.body | ('\n"})
	r = admin.putBAR("hello", []byte(broken), "application/octet-stream")
	if r.code != 422 || !strings.Contains(string(r.body), "flows/f.yaml:") || !strings.Contains(string(r.body), `"details":[`) {
		t.Fatalf("invalid BAR: %d %s", r.code, r.body)
	}
	for _, c := range []struct {
		content []byte
		ctype   string
		want    int
		says    string
	}{
		{[]byte("not a zip"), "application/octet-stream", 422, "not a zip"},
		{nil, "application/octet-stream", 400, "empty"},
		{hello, "application/json", 415, "application/octet-stream"},
		{hello, "", 415, "application/octet-stream"},
		{bytes.Repeat([]byte("x"), 70<<10), "application/octet-stream", 413, "limit"},
	} {
		if r := admin.putBAR("hello", c.content, c.ctype); r.code != c.want || !strings.Contains(string(r.body), c.says) {
			t.Errorf("upload %q (%d bytes): %d %s; want %d saying %q", c.ctype, len(c.content), r.code, r.body, c.want, c.says)
		}
	}
	if r := admin.putBAR(strings.Repeat("b", 40), hello, "application/octet-stream"); r.code != 400 {
		t.Errorf("long name: %d", r.code)
	}
	r = admin.call("GET", "/api/v1/bar-files/hello/content", nil)
	if r.code != 200 || !bytes.Equal(r.body, hello) || r.header.Get("ETag") != `"`+up.SHA256+`"` {
		t.Fatalf("download after refused uploads: %d, same bytes %v", r.code, bytes.Equal(r.body, hello))
	}
	// Nothing of the refused uploads is left on disk: the content
	// directory holds hello's content alone, no spool file.
	contentFiles := func() []string {
		entries, err := os.ReadDir(filepath.Join(e.dataDir, store.DefaultSQLiteFile+"-bars"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			if e.Name() != ".lock" { // the lock backups and removals share
				names = append(names, e.Name())
			}
		}
		return names
	}
	if got := contentFiles(); !slices.Equal(got, []string{up.SHA256}) {
		t.Fatalf("content files after refused uploads: %v, want [%s]", got, up.SHA256)
	}
	// Re-upload replaces (200), list and get show it, delete removes it.
	orders := buildExample(t, "orders")
	if r := admin.putBAR("hello", orders, "application/octet-stream"); r.code != 200 {
		t.Fatalf("replace: %d %s", r.code, r.body)
	}
	r = admin.call("GET", "/api/v1/bar-files", nil)
	if !strings.Contains(string(r.body), `"barFiles":[`) || !strings.Contains(string(r.body), `"project":"orders"`) {
		t.Fatalf("list: %s", r.body)
	}
	if r := admin.call("GET", "/api/v1/bar-files/hello", nil); r.code != 200 || !strings.Contains(string(r.body), `"url":"`) {
		t.Fatalf("get: %d %s", r.code, r.body)
	}
	if r := admin.call("DELETE", "/api/v1/bar-files/hello", nil); r.code != 204 {
		t.Fatalf("delete: %d", r.code)
	}
	for _, p := range []string{"/api/v1/bar-files/hello", "/api/v1/bar-files/hello/content"} {
		if r := admin.call("GET", p, nil); r.code != 404 {
			t.Fatalf("GET %s after delete: %d", p, r.code)
		}
	}
	if got := contentFiles(); len(got) != 0 {
		t.Fatalf("content files after the delete: %v", got)
	}
}

// Names and data of one instance are invisible to every other instance.
func TestArtifactsTenantIsolation(t *testing.T) {
	e := newEnv(t, envOpts{})
	a := e.admin()
	other, err := e.svc.CreateInstance(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	b := e.loginInstance(other)
	a.call("PUT", "/api/v1/configurations/secret-a", cfgBody("secret-a", "setdbparms", "r u p"))
	a.putBAR("bar-a", buildExample(t, "hello"), "application/octet-stream")
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/configurations/secret-a"}, {"DELETE", "/api/v1/configurations/secret-a"},
		{"GET", "/api/v1/bar-files/bar-a"}, {"GET", "/api/v1/bar-files/bar-a/content"}, {"DELETE", "/api/v1/bar-files/bar-a"},
	} {
		if r := b.call(c.method, c.path, nil); r.code != 404 {
			t.Errorf("instance B %s %s: %d %s", c.method, c.path, r.code, r.body)
		}
	}
	for _, p := range []string{"/api/v1/configurations", "/api/v1/bar-files"} {
		if r := b.call("GET", p, nil); strings.Contains(string(r.body), "-a") {
			t.Errorf("instance B's %s shows A's objects: %s", p, r.body)
		}
	}
	// B may use the same names for its own objects, independently.
	if r := b.call("PUT", "/api/v1/configurations/secret-a", cfgBody("secret-a", "serverconf", "values: {}\n")); r.code != 201 {
		t.Fatalf("B creates its own secret-a: %d %s", r.code, r.body)
	}
	var ac map[string]any
	a.call("GET", "/api/v1/configurations/secret-a", nil).json(t, &ac)
	if ac["spec"].(map[string]any)["type"] != "setdbparms" {
		t.Fatalf("B's write changed A's configuration: %v", ac)
	}
}

func (e *env) loginInstance(c iam.InitialCredentials) caller {
	e.t.Helper()
	r := e.exchange(c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)
	if r.code != 200 {
		e.t.Fatalf("exchange: %d %s", r.code, r.body)
	}
	var tok iam.TokenResponse
	r.json(e.t, &tok)
	return caller{e, tok.AccessToken, c.ClientID}
}

var _ = json.Marshal
var _ = io.EOF
var _ = http.StatusOK
var _ = os.Getenv
var _ = exec.Command
