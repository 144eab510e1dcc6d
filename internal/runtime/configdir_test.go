package runtime

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/secret"
)

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func testCAPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestLoadConfigDirFull(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"serverconf/10-base.yaml": `
log: {level: debug, format: text}
flows: {timeout: 5s, maxInFlight: 8}
values:
  backendURL: https://backend.example
  limits: {max: 3, names: [a, b]}
`,
		"serverconf/20-override.yaml": `
http: {maxBodyBytes: 2048}
values:
  backendURL: https://other.example
  started: 2024-01-02T03:04:05Z
`,
		"serverconf/empty.yaml": "",
		"setdbparms/a.txt": `# comment

backend  sluice  pass word with spaces
mqsisetdbparms -n jdbc::tea -u usr -p pwd123
`,
		"truststorecertificate/ca.pem":         testCAPEM(t),
		"policyproject/Conn/backend.yaml":      "url: https://backend.example\ntimeout: 2s\n",
		"policyproject/Conn/nested/queue.json": `{"host": "mq", "port": 1414}`,
		"policyproject/Conn/policy.descriptor": "<ignored/>",
		"policyproject/Conn/.hidden.yaml":      "ignored: true\n",
		"generic/templates/greeting.txt":       "hello",
		"setdbparms/ignored.md":                "not a credentials file",
		"unrelated/whatever.txt":               "the runtime ignores unknown directories",
		"truststorecertificate/README.ignore":  "not a certificate",
	})
	c, err := LoadConfigDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Settings
	if s.Log.Level != "debug" || s.Log.Format != "text" || s.Flows.Timeout != 5*time.Second || s.Flows.MaxInFlight != 8 ||
		s.HTTP.MaxBodyBytes != 2048 || s.Shutdown.Timeout != DefaultSettings().Shutdown.Timeout {
		t.Errorf("settings %+v", s)
	}
	if c.Flow.Timeout != 5*time.Second {
		t.Errorf("flow default timeout %v", c.Flow.Timeout)
	}
	v := c.Flow.Values
	if v["backendURL"] != "https://other.example" || v["started"] != "2024-01-02T03:04:05Z" {
		t.Errorf("values %v", v)
	}
	if lim, _ := v["limits"].(map[string]any); lim == nil || lim["max"] != 3 {
		t.Errorf("values from the first file were lost: %v", v)
	}
	creds := c.Flow.Credentials
	if len(creds) != 2 || creds["backend"].User != "sluice" || creds["backend"].Password.Reveal() != "pass word with spaces" ||
		creds["jdbc::tea"].User != "usr" || creds["jdbc::tea"].Password.Reveal() != "pwd123" {
		t.Errorf("credentials %v", creds)
	}
	if c.Flow.RootCAs == nil {
		t.Error("no trust pool")
	}
	// Each policy by name alone and App Connect's way, {project}:name,
	// where the project is the holding directory or the configuration.
	if len(c.Flow.Policies) != 5 || c.Flow.Policies["backend"]["url"] != "https://backend.example" ||
		fmt.Sprint(c.Flow.Policies["queue"]["port"]) != "1414" || c.Flow.Policies["{Conn}:backend"]["url"] != "https://backend.example" ||
		fmt.Sprint(c.Flow.Policies["{nested}:queue"]["port"]) != "1414" || fmt.Sprint(c.Flow.Policies["{Conn}:queue"]["port"]) != "1414" {
		t.Errorf("policies %v", c.Flow.Policies)
	}
	data, err := fs.ReadFile(c.Flow.Files, "templates/greeting.txt")
	if err != nil || string(data) != "hello" {
		t.Errorf("generic file: %q %v", data, err)
	}
	for _, src := range c.Sources {
		if strings.Contains(src, "ignored") || strings.Contains(src, "unrelated") {
			t.Errorf("source %s should have been ignored", src)
		}
	}
}

func TestLoadConfigDirEmpty(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		c, err := LoadConfigDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if c.Flow.Credentials != nil || c.Flow.RootCAs != nil || c.Flow.Files != nil || c.Flow.Timeout != flow.DefaultTimeout {
			t.Errorf("config of %q: %+v", dir, c.Flow)
		}
	}
}

func TestLoadConfigDirRefuses(t *testing.T) {
	const pw = "hunter2-canary"
	tests := []struct {
		name    string
		files   map[string]string
		wantMsg string
	}{
		{"short setdbparms line", map[string]string{"setdbparms/a.txt": "\n\nbackend " + pw + "\n"}, "setdbparms/a.txt:3: want `resource user password`"},
		{"duplicate resource", map[string]string{"setdbparms/a.txt": "x u " + pw + "\n", "setdbparms/b.txt": "x u " + pw + "\n"}, "setdbparms/b.txt:1: the line's resource is defined twice"},
		{"mqsisetdbparms without password", map[string]string{"setdbparms/a.txt": "mqsisetdbparms -n x -u u\n"}, "want -n resource -u user -p password"},
		{"mqsisetdbparms unknown option", map[string]string{"setdbparms/a.txt": "mqsisetdbparms -n x -u u -q " + pw + "\n"}, "setdbparms/a.txt:1: mqsisetdbparms: option 3 is not -n, -u or -p"},
		{"unknown setting", map[string]string{"serverconf/a.yaml": "flows:\n  timout: 3s\n"}, "serverconf/a.yaml: line 2: unknown field"},
		{"bad duration", map[string]string{"serverconf/a.yaml": "flows:\n  timeout: soon\n"}, "serverconf/a.yaml"},
		{"bad log level", map[string]string{"serverconf/a.yaml": "log: {level: loud}\n"}, "log.level must be debug, info, warn or error"},
		{"negative limit", map[string]string{"serverconf/a.yaml": "http: {maxBodyBytes: -1}\n"}, "maxBodyBytes must be positive"},
		{"non-string value keys", map[string]string{"serverconf/a.yaml": "values:\n  m: {1: one}\n"}, "serverconf: values: map keys must be strings"},
		{"not a certificate", map[string]string{"truststorecertificate/x.pem": "-----BEGIN NOTHING-----\n"}, "truststorecertificate/x.pem: no PEM certificate"},
		{"duplicate policy", map[string]string{"policyproject/A/db.yaml": "a: 1\n", "policyproject/B/db.yaml": "a: 2\n"}, `policy "db" is defined in policyproject/A/db.yaml and policyproject/B/db.yaml: name its project in serverconf's Defaults.policyProject`},
		{"duplicate policy, default project elsewhere", map[string]string{"policyproject/A/db.yaml": "a: 1\n", "policyproject/B/db.yaml": "a: 2\n",
			"serverconf/s.yaml": "Defaults:\n  policyProject: C\n"}, `policy "db" is defined in policyproject/A/db.yaml and policyproject/B/db.yaml`},
		{"misspelt Sluice setting", map[string]string{"serverconf/a.yaml": "flow:\n  timeout: 1s\n"}, `serverconf/a.yaml: line 1: unknown field: Sluice's settings are log, http`},
		{"misspelt Sluice nested setting", map[string]string{"serverconf/a.yaml": "flows:\n  timeot: 1s\n"}, `serverconf/a.yaml: line 2: unknown field`},
		{"ACE trace level unknown", map[string]string{"serverconf/a.yaml": "trace: loud\n"}, `line 1: trace must be none, debug or debugTrace`},
		{"ACE log format unknown", map[string]string{"serverconf/a.yaml": "Log:\n  outputFormat: xml\n"}, `line 2: Log.outputFormat must be idText, text, ibmjson or json`},
		{"ACE post size not a number", map[string]string{"serverconf/a.yaml": "ResourceManagers:\n  HTTPConnector:\n    MaxPostSize: lots\n"}, `line 3: ResourceManagers.HTTPConnector.MaxPostSize must be a whole number`},
		{"ACE user variables not a mapping", map[string]string{"serverconf/a.yaml": "UserVariables: [a]\n"}, `line 1: UserVariables must be a mapping`},
		{"ACE policy project not a value", map[string]string{"serverconf/a.yaml": "Defaults:\n  policyProject: [a]\n"}, `line 2: Defaults.policyProject must be a single value`},
		{"serverconf not a mapping", map[string]string{"serverconf/a.yaml": "- a\n"}, `serverconf/a.yaml: line 1: the document must be a mapping`},
		{"invalid policy", map[string]string{"policyproject/A/db.yaml": "a: [\n"}, "policyproject/A/db.yaml"},
		{"policy outside a project", map[string]string{"policyproject/db.yaml": "a: 1\n"}, "belongs in a policy project directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfigDir(writeDir(t, tt.files))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
	if _, err := LoadConfigDir(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dir: %v", err)
	}
}

func TestRedactingLogHandler(t *testing.T) {
	creds := map[string]flow.Credential{
		"a": {User: "u", Password: secret.New("s3cr3t-\"quoted\"")},
		"b": {User: "x", Password: secret.New("ab")}, // too short to redact
	}
	r := newRedactor(creds)
	var buf bytes.Buffer
	log := slog.New(newRedactHandler(slog.NewJSONHandler(&buf, nil), r)).With("preset", `s3cr3t-"quoted"`)
	log.Info(`message with s3cr3t-"quoted"`,
		"plain", `s3cr3t-"quoted"`,
		"err", errors.New(`backend said s3cr3t-"quoted"`),
		slog.Group("g", "inner", `s3cr3t-"quoted"`),
		"basic", "Basic dTpzM2NyM3QtInF1b3RlZCI=",
		"secretValue", creds["a"].Password,
	)
	out := buf.String()
	if strings.Contains(out, "s3cr3t") || strings.Contains(out, "dTpzM2NyM3QtInF1b3RlZCI=") {
		t.Errorf("log shows the secret: %s", out)
	}
	if got := strings.Count(out, secret.Redacted); got != 7 {
		t.Errorf("%d redactions, want 7: %s", got, out)
	}
	// In JSON the quotes of the secret are escaped; that form is
	// redacted too.
	if got := string(r.Bytes([]byte(`{"p":"s3cr3t-\"quoted\""}`))); got != `{"p":"[REDACTED]"}` {
		t.Errorf("JSON form: %s", got)
	}
	if got := r.String("ab cab"); got != "ab cab" {
		t.Errorf("short secret redacted: %s", got)
	}
}
