package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apispec "github.com/sluice-dev/sluice/api"
)

// JSON bodies that encoding/json would take in quietly (invalid UTF-8
// turned into U+FFFD, the last of duplicate keys, null as nothing) are
// refused with a 400 that says why, and change nothing.
func TestJSONBodiesAreStrict(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	for name, c := range map[string]struct{ body, says string }{
		"invalid UTF-8":          {"{\"metadata\":{\"name\":\"c1\"},\"spec\":{\"type\":\"serverconf\",\"description\":\"caf\xe9\"}}", "UTF-8"},
		"duplicate key":          {`{"metadata":{"name":"c1"},"spec":{"type":"serverconf"},"spec":{"type":"generic"}}`, `repeats the key \"spec\"`},
		"duplicate nested key":   {`{"metadata":{"name":"c1","name":"c2"},"spec":{"type":"serverconf"}}`, `repeats the key \"name\"`},
		"null":                   {`null`, "null"},
		"null with white space":  {" \n null \t", "null"},
		"duplicate in an array":  {`{"metadata":{"name":"c1"},"spec":{"type":"serverconf","x":[{"a":1,"a":2}]}}`, `repeats the key \"a\"`},
		"one key in two objects": {`{"metadata":{"name":"c1"},"spec":{"type":"serverconf","description":"name"}}`, ""},
	} {
		r := admin.call("PUT", "/api/v1/configurations/c1", c.body)
		if c.says == "" {
			// Control: the same key in different objects is fine (this
			// one fails later, on its data, not on its JSON).
			if strings.Contains(string(r.body), "repeats the key") {
				t.Errorf("%s: %d %s", name, r.code, r.body)
			}
			continue
		}
		if r.code != 400 || !strings.Contains(string(r.body), c.says) {
			t.Errorf("%s: %d %s, want 400 naming %s", name, r.code, r.body, c.says)
		}
	}
	if r := admin.call("GET", "/api/v1/configurations/c1", nil); r.code != 404 {
		t.Fatalf("a refused body created the configuration: %d %s", r.code, r.body)
	}
	for _, path := range []string{"/api/v1/users/u1", "/api/v1/integration-runtimes/r1", "/api/v1/credentials/k1"} {
		if r := admin.call("PUT", path, "null"); r.code != 400 {
			t.Errorf("PUT %s null: %d %s", path, r.code, r.body)
		}
	}
}

// A header this server reads once must be sent once: a proxy in front may
// have looked at the other copy.
func TestRepeatedCredentialHeadersAreRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	req := mustReq("GET", e.url+"/api/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+admin.token)
	req.Header.Add("X-IBM-Client-Id", admin.clientID)
	req.Header.Add("X-IBM-Client-Id", admin.clientID)
	if r := e.do(req); r.code != 400 || !strings.Contains(string(r.body), "X-IBM-Client-Id header is sent more than once") {
		t.Fatalf("two X-IBM-Client-Id headers: %d %s", r.code, r.body)
	}
	req = mustReq("POST", e.url+"/api/v1/tokens", strings.NewReader(fmt.Sprintf(`{"apiKey":%q}`, e.creds.APIKey)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("X-IBM-Client-Id", e.creds.ClientID)
	req.Header.Add("X-IBM-Client-Id", "another")
	req.Header.Set("X-IBM-Client-Secret", e.creds.ClientSecret)
	req.Header.Set("X-IBM-Instance-Id", e.creds.InstanceID)
	if r := e.do(req); r.code != 400 {
		t.Fatalf("token exchange with two client ids: %d %s", r.code, r.body)
	}
}

// Concurrent PUTs creating the same new name: one creates it (201), the
// others replace it (200); none is refused as a conflict.
func TestConcurrentPutsOfOneNewName(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	bodies := map[string]any{
		"/api/v1/users/race":                obj("race", map[string]any{"role": "viewer"}),
		"/api/v1/service-ids/race":          obj("race", map[string]any{"role": "viewer"}),
		"/api/v1/credentials/race":          obj("race", map[string]any{"description": "d"}),
		"/api/v1/configurations/race":       cfgBody("race", "serverconf", "values: {}\n"),
		"/api/v1/integration-runtimes/race": runtimeBody("race", map[string]any{"barURL": []string{e.url + "/api/v1/bar-files/x/content"}, "replicas": 0}),
	}
	const n = 8
	for path, body := range bodies {
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range codes {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				codes[i] = admin.call("PUT", path, body).code
			}(i)
		}
		wg.Wait()
		created := 0
		for _, c := range codes {
			switch c {
			case 201:
				created++
			case 200:
			default:
				t.Errorf("PUT %s: a %d among %v", path, c, codes)
			}
		}
		if created != 1 {
			t.Errorf("PUT %s: %d creations among %v, want 1", path, created, codes)
		}
	}
}

// The audit list comes in the order the OpenAPI document promises.
func TestAuditOrderIsTheDocumented(t *testing.T) {
	doc, err := apispec.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Paths map[string]map[string]json.RawMessage
	}
	var get struct{ Description string }
	if err := json.Unmarshal(doc, &d); err != nil || json.Unmarshal(d.Paths["/api/v1/audit"]["get"], &get) != nil {
		t.Fatalf("the document: %v", err)
	}
	if desc := get.Description; !strings.Contains(desc, "newest first") {
		t.Fatalf("the document does not say the audit list is newest first: %q", desc)
	}
	e := newEnv(t, envOpts{})
	admin := e.admin()
	for i := 0; i < 3; i++ {
		e.clock.Add(time.Second)
		admin.call("PUT", fmt.Sprintf("/api/v1/service-ids/s%d", i), obj(fmt.Sprintf("s%d", i), map[string]any{"role": "viewer"}))
	}
	var out struct {
		AuditEvents []struct{ Time, Object string }
	}
	admin.call("GET", "/api/v1/audit", nil).json(t, &out)
	if len(out.AuditEvents) < 4 || out.AuditEvents[0].Object != "serviceId/s2" {
		t.Fatalf("audit list does not start with the newest event: %+v", out.AuditEvents)
	}
	for i := 1; i < len(out.AuditEvents); i++ {
		if out.AuditEvents[i].Time > out.AuditEvents[i-1].Time {
			t.Fatalf("audit list not newest first at %d: %+v", i, out.AuditEvents)
		}
	}
	var last struct{ AuditEvents []struct{ Object string } }
	admin.call("GET", "/api/v1/audit?limit=1", nil).json(t, &last)
	if len(last.AuditEvents) != 1 || last.AuditEvents[0].Object != "serviceId/s2" {
		t.Fatalf("limit=1 is not the newest event: %+v", last.AuditEvents)
	}
}

// A trace belongs to its runtime (by uid), and logs of a runtime that never
// ran are empty, not an error.
func TestTracesBelongToTheRuntimeAndLogsOfANewRuntime(t *testing.T) {
	e := newEnv(t, envOpts{backend: true})
	admin := e.admin()
	rt := runtimeBody("r1", map[string]any{"barURL": []string{e.url + "/api/v1/bar-files/x/content"}, "replicas": 0})
	if r := admin.call("PUT", "/api/v1/integration-runtimes/r1", rt); r.code != 201 {
		t.Fatalf("create runtime: %d %s", r.code, r.body)
	}
	r := admin.call("GET", "/api/v1/integration-runtimes/r1/logs?tail=10", nil)
	if r.code != 200 || len(r.body) != 0 {
		t.Fatalf("logs of a runtime that never started: %d %q, want 200 and no lines", r.code, r.body)
	}
	trace := obj("t1", map[string]any{"integrationRuntimeName": "r1", "type": "user"})
	if r := admin.call("PUT", "/api/v1/traces/t1", trace); r.code != 201 {
		t.Fatalf("create trace: %d %s", r.code, r.body)
	}
	if r := admin.call("PUT", "/api/v1/traces/t1", trace); r.code != 200 {
		t.Fatalf("replace trace: %d %s", r.code, r.body)
	}
	if r := admin.call("DELETE", "/api/v1/integration-runtimes/r1", nil); r.code != 204 {
		t.Fatalf("delete runtime: %d %s", r.code, r.body)
	}
	if r := admin.call("GET", "/api/v1/traces/t1", nil); r.code != 404 {
		t.Fatalf("trace of a deleted runtime: %d %s", r.code, r.body)
	}
	// A new runtime of the same name does not inherit the old one's trace.
	if r := admin.call("PUT", "/api/v1/integration-runtimes/r1", rt); r.code != 201 {
		t.Fatalf("recreate runtime: %d %s", r.code, r.body)
	}
	if r := admin.call("GET", "/api/v1/traces/t1", nil); r.code != 404 {
		t.Fatalf("a new runtime of the same name inherited the trace: %d %s", r.code, r.body)
	}
	if r := admin.call("GET", "/api/v1/traces", nil); !strings.Contains(string(r.body), `{"traces":[]}`) {
		t.Fatalf("trace list after recreating the runtime: %s", r.body)
	}
}
