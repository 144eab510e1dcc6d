package api_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/server"
)

// TestQuotas: a write that would take the instance over a quota is a 403
// naming the quota, its value and its flag, audited, and changes nothing;
// replacing an object within the quota still works.
func TestQuotas(t *testing.T) {
	hello := buildExample(t, "hello")
	e := newEnv(t, envOpts{quotas: server.Quotas{Runtimes: 2, Replicas: 3, BARStorage: int64(len(hello)) + 10, ConfigArchive: 1024}})
	admin := e.admin()
	refused := func(label string, r resp, want ...string) {
		t.Helper()
		if r.code != 403 {
			t.Fatalf("%s: %d %s, want 403", label, r.code, r.body)
		}
		for _, w := range want {
			if !strings.Contains(string(r.body), w) {
				t.Errorf("%s: answer lacks %q: %s", label, w, r.body)
			}
		}
	}

	// BAR storage.
	if r := admin.putBAR("a", hello, "application/octet-stream"); r.code != 201 {
		t.Fatalf("first BAR: %d %s", r.code, r.body)
	}
	refused("second BAR", admin.putBAR("b", hello, "application/octet-stream"), "quota", "--quota-bar-storage", "quota of "+strconv.Itoa(len(hello)+10)+" bytes")
	if r := admin.call("GET", "/api/v1/bar-files/b", nil); r.code != 404 {
		t.Errorf("refused BAR was stored: %d", r.code)
	}
	if r := admin.putBAR("a", hello, "application/octet-stream"); r.code != 200 {
		t.Errorf("replacing the BAR within the quota: %d %s", r.code, r.body)
	}

	// Runtimes and replicas.
	barURL := e.url + "/api/v1/bar-files/a/content"
	rt := func(name string, replicas int) resp {
		return admin.call("PUT", "/api/v1/integration-runtimes/"+name, runtimeBody(name, map[string]any{"barURL": []string{barURL}, "replicas": replicas}))
	}
	if r := rt("r1", 1); r.code != 201 {
		t.Fatalf("r1: %d %s", r.code, r.body)
	}
	if r := rt("r2", 2); r.code != 201 {
		t.Fatalf("r2: %d %s", r.code, r.body)
	}
	refused("third runtime", rt("r3", 0), "quota is 2", "--quota-runtimes")
	refused("more replicas", rt("r2", 3), "quota of 3 replicas", "--quota-replicas")
	if r := admin.call("GET", "/api/v1/integration-runtimes/r2", nil); !strings.Contains(string(r.body), `"replicas":2`) {
		t.Errorf("refused replicas changed the spec: %s", r.body)
	}
	if r := admin.call("GET", "/api/v1/integration-runtimes/r3", nil); r.code != 404 {
		t.Errorf("refused runtime was stored: %d", r.code)
	}
	if r := rt("r2", 1); r.code != 200 {
		t.Errorf("fewer replicas: %d %s", r.code, r.body)
	}

	// The inflated size of a configuration archive: 4 KiB of zeros
	// compress to a few bytes.
	big := zipOf(t, map[string]string{"a.txt": strings.Repeat("0", 4096)})
	refused("generic archive", admin.call("PUT", "/api/v1/configurations/g", cfgBody("g", "generic", big)),
		"inflates to 4096 bytes", "quota of a configuration archive is 1024 bytes", "--quota-config-archive")
	if r := admin.call("GET", "/api/v1/configurations/g", nil); r.code != 404 {
		t.Errorf("refused configuration was stored: %d", r.code)
	}
	small := zipOf(t, map[string]string{"a.txt": "hello"})
	if r := admin.call("PUT", "/api/v1/configurations/g", cfgBody("g", "generic", small)); r.code != 201 {
		t.Errorf("small archive: %d %s", r.code, r.body)
	}

	// Each refusal is in the audit, as a failure.
	r := admin.call("GET", "/api/v1/audit?limit=100", nil)
	for _, obj := range []string{"barFile/b", "integrationRuntime/r3", "integrationRuntime/r2"} {
		if !strings.Contains(string(r.body), obj) {
			t.Errorf("audit lacks %s: %.2000s", obj, r.body)
		}
	}
}
