package conformance

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/orchestrator/local"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// TestCanarySecretsThroughARunningRuntime follows secret configuration
// data into a running integration runtime: the orders example sends the
// canary credentials of a setdbparms configuration to a backend on every
// order, with a user and a service trace on. The backend proves the
// credentials were used; then the traces, the runtime's logs, every
// answer, the control plane's logs and its data dir (except the runtime's
// own materialised configuration, which is its input) must not hold them.
func TestCanarySecretsThroughARunningRuntime(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	h := newHarness(t, srv)
	cs := &canaries{t: t}
	c := srv.Creds
	run := randomHex(6)
	password := cs.add("setdbparms password", "CANARYrtpw"+run+randomHex(8), nil)
	token := cs.add("setdbparms token", "CANARYrttok"+run+randomHex(8), nil)
	basic := cs.add("Basic credentials the runtime sends", base64.StdEncoding.EncodeToString([]byte("sluice:"+password)), nil)

	var mu sync.Mutex
	var seen []string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"o-1","status":"accepted"}`))
	}))
	defer backend.Close()

	admin := h.login("exchange", c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)
	put := func(label, path string, body any, want int) *exchange {
		return h.do(call{label: label, method: "PUT", path: path, as: admin, body: body, want: want, conforms: true})
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	dataCreds := b64("backend sluice " + password + "\nbackend-token token " + token + "\n")
	cs.add("base64 setdbparms data", dataCreds, nil)
	put("credentials", "/api/v1/configurations/creds", map[string]any{"spec": map[string]any{"type": "setdbparms", "data": dataCreds}}, 201)
	put("settings", "/api/v1/configurations/settings", map[string]any{"spec": map[string]any{"type": "serverconf",
		"data": b64("values:\n  backendURL: " + backend.URL + "\n  pricingURL: " + backend.URL + "\n")}}, 201)
	// The backend is on loopback, closed to flows unless allow-listed.
	put("egress allow-list", "/api/v1/egress-policy", map[string]any{"allow": []string{strings.TrimPrefix(backend.URL, "http://")}}, 200)
	bar := decode[map[string]any](t, h.do(call{label: "orders BAR", method: "PUT", path: "/api/v1/bar-files/orders", as: admin,
		body: buildBAR(t, "orders"), contentType: "application/octet-stream", want: 201, conforms: true}))
	put("runtime", "/api/v1/integration-runtimes/ord", map[string]any{"spec": map[string]any{"barURL": []any{bar["url"]},
		"configurations": []string{"creds", "settings"}, "replicas": 1}}, 201)
	// The runtime is a detached process: make sure it goes with the test.
	t.Cleanup(func() { stopRuntimes(t, h, admin, srv.DataDir) })
	put("user trace", "/api/v1/traces/tu", map[string]any{"spec": map[string]any{"integrationRuntimeName": "ord", "type": "user"}}, 201)
	put("service trace", "/api/v1/traces/ts", map[string]any{"spec": map[string]any{"integrationRuntimeName": "ord", "type": "service"}}, 201)

	// Wait for the runtime through a watch, not a clock.
	w := h.stream(call{label: "watch until ready", method: "GET", path: "/api/v1/integration-runtimes/ord?watch=true", as: admin, want: 200, conforms: true},
		func(b []byte) bool {
			return bytes.Contains(b, []byte(`"phase":"Ready"`)) || bytes.Contains(b, []byte(`"phase":"Failed"`))
		})
	var rt struct {
		Status struct {
			Phase     string
			Endpoints []struct{ Name, Method, URI string }
		}
	}
	events := bytes.Split(w.body, []byte("\n"))
	for i := len(events) - 1; i >= 0; i-- {
		if d, ok := bytes.CutPrefix(events[i], []byte("data: ")); ok && bytes.Contains(d, []byte(`"phase":"`)) {
			if err := json.Unmarshal(d, &rt); err != nil {
				t.Fatalf("watch event: %v: %s", err, d)
			}
			break
		}
	}
	if rt.Status.Phase != "Ready" {
		t.Fatalf("the runtime did not get ready: %s", w.body)
	}
	orderURL := ""
	for _, ep := range rt.Status.Endpoints {
		if ep.Name == "create-order" {
			orderURL = strings.Replace(ep.URI, "{customer}", "acme", 1)
		}
	}
	if orderURL == "" {
		t.Fatalf("no create-order endpoint in %+v", rt.Status.Endpoints)
	}
	resp, err := http.Post(orderURL, "application/json", strings.NewReader(`{"items":[{"sku":"ABC-001","qty":2,"price":9.99}]}`))
	if err != nil {
		t.Fatal(err)
	}
	flowAnswer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the order flow answered %d: %s", resp.StatusCode, flowAnswer)
	}
	cs.scan("the flow's answer", string(flowAnswer)+headerText(resp.Header), nil)
	mu.Lock()
	used := strings.Join(seen, "\n")
	mu.Unlock()
	if !strings.Contains(used, "Basic "+basic) {
		t.Fatalf("the backend never got the canary credentials; it saw %q", used)
	}

	// The trace records the order asynchronously from the answer: poll
	// its state (bounded) until it holds events, then download both.
	for i := 0; ; i++ {
		tr := decode[struct{ Status struct{ Events int } }](t, h.do(call{label: "user trace state", method: "GET", path: "/api/v1/traces/tu", as: admin, want: 200, conforms: true}))
		if tr.Status.Events > 0 {
			break
		}
		if i == 100 {
			t.Fatal("the user trace recorded nothing")
		}
		time.Sleep(100 * time.Millisecond)
	}
	traced := 0
	for _, name := range []string{"tu", "ts"} {
		dl := h.do(call{label: "download trace " + name, method: "GET", path: "/api/v1/traces/" + name + "/download", as: admin, want: 200, conforms: true})
		zr, err := zip.NewReader(bytes.NewReader(dl.body), int64(len(dl.body)))
		if err != nil {
			t.Fatalf("trace %s is not a zip: %v", name, err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			traced += len(b)
			if name == "tu" && strings.HasSuffix(f.Name, ".ndjson") && !bytes.Contains(b, []byte("create-order")) {
				t.Errorf("the user trace file %s does not show the order flow", f.Name)
			}
			cs.scan("trace "+name+" file "+f.Name, string(b), nil)
		}
	}
	logs := h.do(call{label: "runtime logs", method: "GET", path: "/api/v1/integration-runtimes/ord/logs?tail=10000", as: admin, want: 200, conforms: true})
	if len(logs.body) == 0 {
		t.Error("the runtime's log is empty")
	}
	h.do(call{label: "audit", method: "GET", path: "/api/v1/audit", as: admin, want: 200, conforms: true})
	h.do(call{label: "configuration", method: "GET", path: "/api/v1/configurations/creds", as: admin, want: 200, conforms: true})

	for _, ex := range h.log {
		cs.scan("the answer to "+ex.label, string(ex.body)+"\n"+headerText(ex.header), ex)
	}
	cs.scan("the control plane's log", srv.Stderr()+srv.Stdout(), nil)
	err = filepath.WalkDir(srv.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(srv.DataDir, path)
		if strings.Contains(rel, string(filepath.Separator)+"config"+string(filepath.Separator)) {
			return nil // the runtime's materialised configuration: its input, mode 0600 in a 0700 dir
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // a runtime may rotate a log file away under us
		}
		cs.scan("data dir file "+rel, string(b), nil)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes of trace, %d bytes of runtime log, %d answers scanned", traced, len(logs.body), len(h.log))
}

// stopRuntimes deletes the test's runtime and waits until no runtime
// process of the data dir is left; any that outlive the wait are killed
// by pid (they belong to this test's control plane) and fail the test.
func stopRuntimes(t *testing.T, h *harness, admin *servertest.Client, dataDir string) {
	h.do(call{label: "delete runtime", method: "DELETE", path: "/api/v1/integration-runtimes/ord", as: admin})
	for i := 0; i < 300 && len(local.RuntimeProcesses(dataDir)) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range local.RuntimeProcesses(dataDir) {
		t.Errorf("runtime process %d outlived its runtime; killing it", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
