package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func runtimeBody(name string, spec map[string]any) map[string]any { return obj(name, spec) }

func TestRuntimeResource(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	admin.putBAR("hello", buildExample(t, "hello"), "application/octet-stream")
	admin.call("PUT", "/api/v1/configurations/sc", cfgBody("sc", "serverconf", "values: {}\n"))
	barURL := e.url + "/api/v1/bar-files/hello/content"
	spec := map[string]any{"barURL": []string{barURL}, "configurations": []string{"sc"}, "version": "13.0", "replicas": 1,
		"template":           map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "runtime"}}}},
		"forceFlowBasicAuth": map[string]any{"enabled": true}}
	r := admin.call("PUT", "/api/v1/integration-runtimes/ir1", runtimeBody("ir1", spec))
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	var got map[string]any
	r.json(t, &got)
	meta := got["metadata"].(map[string]any)
	if meta["generation"].(float64) != 1 || got["status"].(map[string]any)["phase"] != "Pending" ||
		!strings.Contains(string(r.body), "supportsTraceCustomResource") {
		t.Fatalf("create answer: %s", r.body)
	}
	// App Connect's version strings are accepted, and license kept and
	// echoed; status.versions says what runs.
	for _, v := range []string{"12.0", "13.0", "12.0.12.3-r1", "13.0.2.1-r1", "13.0.2.1"} {
		spec := map[string]any{"barURL": []string{barURL}, "version": v, "replicas": 0,
			"license": map[string]any{"accept": true, "license": "L-KPRV-AUG9NC", "use": "AppConnectEnterpriseProduction"}}
		r := admin.call("PUT", "/api/v1/integration-runtimes/v", runtimeBody("v", spec))
		var out struct {
			Spec struct {
				Version string
				License map[string]any
			}
			Status struct {
				Versions struct {
					Reconciled, Engine string
					Available          struct{ Channels []struct{ Name string } }
				}
			}
		}
		r.json(t, &out)
		if r.code/100 != 2 || out.Spec.Version != v || out.Spec.License["license"] != "L-KPRV-AUG9NC" || out.Spec.License["accept"] != true ||
			out.Status.Versions.Reconciled != v || !strings.HasPrefix(out.Status.Versions.Engine, "sluice ") ||
			len(out.Status.Versions.Available.Channels) != 2 || out.Status.Versions.Available.Channels[1].Name != "13.0" {
			t.Fatalf("version %s: %d %s", v, r.code, r.body)
		}
	}
	admin.call("DELETE", "/api/v1/integration-runtimes/v", nil)
	// GET, edit, PUT back whole (metadata and status included): works, and
	// bumps the generation only when the spec changed.
	r = admin.call("GET", "/api/v1/integration-runtimes/ir1", nil)
	r.json(t, &got)
	if r := admin.call("PUT", "/api/v1/integration-runtimes/ir1", got); r.code != 200 || !strings.Contains(string(r.body), `"generation":1`) {
		t.Fatalf("unchanged PUT back: %d %s", r.code, r.body)
	}
	got["spec"].(map[string]any)["replicas"] = 0
	r = admin.call("PUT", "/api/v1/integration-runtimes/ir1", got)
	if r.code != 200 || !strings.Contains(string(r.body), `"generation":2`) {
		t.Fatalf("edited PUT back: %d %s", r.code, r.body)
	}
	if r := admin.call("GET", "/api/v1/integration-runtimes", nil); !strings.Contains(string(r.body), `{"integrationRuntimes":[`) {
		t.Fatalf("list: %s", r.body)
	}
	// Referential integrity: what a runtime uses cannot be deleted
	// without force, and the refusal names the runtime.
	for _, p := range []string{"/api/v1/configurations/sc", "/api/v1/bar-files/hello"} {
		r := admin.call("DELETE", p, nil)
		if r.code != 409 || !strings.Contains(string(r.body), "ir1") || !strings.Contains(string(r.body), "force=true") {
			t.Fatalf("DELETE %s in use: %d %s", p, r.code, r.body)
		}
	}
	// Each refusal is audited, as refused mutations are.
	audit := admin.call("GET", "/api/v1/audit?limit=100", nil)
	for _, want := range []string{`"action":"configuration.delete","object":"configuration/sc","outcome":"failure"`,
		`"action":"barFile.delete","object":"barFile/hello","outcome":"failure"`} {
		if !strings.Contains(string(audit.body), want) {
			t.Errorf("the audit log lacks %s:\n%s", want, audit.body)
		}
	}
	if r := admin.call("DELETE", "/api/v1/configurations/sc?force=true", nil); r.code != 204 {
		t.Fatalf("forced delete: %d %s", r.code, r.body)
	}
	// A runtime may name what does not exist (yet): accepted.
	missing := map[string]any{"barURL": []string{e.url + "/api/v1/bar-files/later/content"}, "configurations": []string{"later"}}
	if r := admin.call("PUT", "/api/v1/integration-runtimes/ir2", runtimeBody("ir2", missing)); r.code != 201 {
		t.Fatalf("runtime naming missing things: %d %s", r.code, r.body)
	}
	if r := admin.call("DELETE", "/api/v1/integration-runtimes/ir1", nil); r.code != 204 {
		t.Fatalf("delete: %d", r.code)
	}
	if r := admin.call("GET", "/api/v1/integration-runtimes/ir1", nil); r.code != 404 || !strings.Contains(string(r.body), `"Internal error","code":404`) {
		t.Fatalf("GET after delete: %d %s", r.code, r.body)
	}
	// Once the runtime is gone, the BAR can be deleted.
	if r := admin.call("DELETE", "/api/v1/bar-files/hello", nil); r.code != 204 {
		t.Fatalf("delete unused BAR: %d %s", r.code, r.body)
	}
}

func TestRuntimeBadInput(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	good := e.url + "/api/v1/bar-files/x/content"
	cases := []struct {
		body any
		says string
	}{
		{runtimeBody("r", map[string]any{"barURL": []string{good}, "replicas": -1}), "out of range"},
		{runtimeBody("r", map[string]any{"barURL": []string{"ftp://example.com/x.bar"}}), "https"},
		{runtimeBody("r", map[string]any{"barURL": []string{"http://example.com/x.bar"}}), "https"},
		{runtimeBody("r", map[string]any{"barURL": []string{"https://user:pw@example.com/x.bar"}}), "barauth"},
		{runtimeBody("r", map[string]any{"barURL": []string{}}), "empty"},
		{runtimeBody("r", map[string]any{"barURL": []string{good}, "configurations": []string{"bad name"}}), "not allowed"},
		{runtimeBody("r", map[string]any{"barURL": []string{good}, "configurations": []string{"a", "a"}}), "twice"},
		{runtimeBody("r", map[string]any{"barURL": []string{good}, "bogus": 1}), "unknown field"},
		{runtimeBody("r", map[string]any{"barURL": []string{good}, "replicas": "two"}), "number"},
		{runtimeBody(strings.Repeat("r", 33), map[string]any{"barURL": []string{good}}), "33 characters"},
		{runtimeBody("r", map[string]any{"barURL": []string{good}, "version": "11.0"}), `11.0\" is not an App Connect version Sluice runs: give a channel (12.0, 13.0) or a full version such as 13.0.2.1-r1`},
		{runtimeBody("r", map[string]any{"barURL": []string{good}, "version": "13.0.x"}), "is not an App Connect version"},
		{runtimeBody("r", map[string]any{"barURL": []string{good}, "license": "accept"}), "spec.license must be an object"},
	}
	for _, c := range cases {
		r := admin.call("POST", "/api/v1/integration-runtimes", c.body)
		if r.code != 400 || !strings.Contains(string(r.body), c.says) {
			t.Errorf("%.100v: %d %s; want 400 saying %q", c.body, r.code, r.body, c.says)
		}
	}
	if r := admin.call("GET", "/api/v1/integration-runtimes", nil); strings.Contains(string(r.body), `"name"`) {
		t.Fatalf("bad input stored a runtime: %s", r.body)
	}
}

func TestRuntimeWatchStreamsChanges(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	req := mustReq("GET", e.url+"/api/v1/integration-runtimes?watch=true", nil)
	req.Header.Set("Authorization", "Bearer "+admin.token)
	req.Header.Set("X-IBM-Client-Id", admin.clientID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
		close(events)
	}()
	spec := map[string]any{"barURL": []string{e.url + "/api/v1/bar-files/x/content"}}
	admin.call("PUT", "/api/v1/integration-runtimes/w1", runtimeBody("w1", spec))
	var ev map[string]any
	json.Unmarshal([]byte(<-events), &ev)
	if ev["metadata"].(map[string]any)["name"] != "w1" {
		t.Fatalf("first event: %v", ev)
	}
	spec["replicas"] = 0
	admin.call("PUT", "/api/v1/integration-runtimes/w1", runtimeBody("w1", spec))
	json.Unmarshal([]byte(<-events), &ev)
	if ev["metadata"].(map[string]any)["generation"].(float64) != 2 {
		t.Fatalf("change event: %v", ev)
	}
	admin.call("DELETE", "/api/v1/integration-runtimes/w1", nil)
	if d := <-events; !strings.Contains(d, `"w1"`) {
		t.Fatalf("delete event: %s", d)
	}
}

// A list read again answers what it remembered of each runtime only while
// the stored runtime is the same: the bytes of each item are those of the
// runtime's own GET, before and after a spec or status changes.
func TestRuntimeListAnswersEachRuntimeAsItIsNow(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	admin.putBAR("hello", buildExample(t, "hello"), "application/octet-stream")
	barURL := e.url + "/api/v1/bar-files/hello/content"
	for _, n := range []string{"a", "b"} {
		if r := admin.call("PUT", "/api/v1/integration-runtimes/"+n, runtimeBody(n, map[string]any{"barURL": []string{barURL}, "replicas": 0})); r.code != 201 {
			t.Fatalf("create %s: %d %s", n, r.code, r.body)
		}
	}
	check := func(what string) {
		t.Helper()
		want := `{"integrationRuntimes":[`
		for i, n := range []string{"a", "b"} {
			r := admin.call("GET", "/api/v1/integration-runtimes/"+n, nil)
			if r.code != 200 {
				t.Fatalf("%s: GET %s: %d", what, n, r.code)
			}
			if i > 0 {
				want += ","
			}
			want += strings.TrimSuffix(string(r.body), "\n")
		}
		want += "]}\n"
		for range 2 {
			if r := admin.call("GET", "/api/v1/integration-runtimes", nil); r.code != 200 || string(r.body) != want {
				t.Fatalf("%s: list %d\n%s\nwant\n%s", what, r.code, r.body, want)
			}
		}
	}
	check("created")
	if r := admin.call("PUT", "/api/v1/integration-runtimes/b", runtimeBody("b", map[string]any{"barURL": []string{barURL}, "replicas": 0, "version": "13.0"})); r.code != 200 {
		t.Fatalf("replace b: %d %s", r.code, r.body)
	}
	check("spec replaced")
	if err := e.st.SetRuntimeStatus(context.Background(), e.creds.InstanceID, "a", `{"phase":"Ready","replicas":0}`); err != nil {
		t.Fatal(err)
	}
	check("status written")
	if r := admin.call("GET", "/api/v1/integration-runtimes", nil); !strings.Contains(string(r.body), `"phase":"Ready"`) || !strings.Contains(string(r.body), `"version":"13.0"`) {
		t.Fatalf("list after the changes: %s", r.body)
	}
}
