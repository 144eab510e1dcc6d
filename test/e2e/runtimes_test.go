package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/obs/obstest"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// helloBAR builds a hello project whose greeting starts with word, so two
// generations of one runtime can be told apart.
func helloBAR(t *testing.T, word string) []byte {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "flows"), 0o755)
	os.WriteFile(filepath.Join(dir, "sluice.yaml"), []byte("name: hello\nversion: 1.0.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "flows", "hello.yaml"), []byte(fmt.Sprintf(
		"flow: hello\ntrigger:\n  http:\n    method: GET\n    path: /hello/{name}\nsteps:\n  - map: '{greeting: \"%s, \\(.params.name)!\"}'\n", word)), 0o644)
	b, _, err := bar.Build(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putBAR(t *testing.T, c *servertest.Client, name string, content []byte) string {
	t.Helper()
	req, _ := http.NewRequest("PUT", c.URL+"/api/v1/bar-files/"+name, strings.NewReader(string(content)))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("X-IBM-Client-Id", c.ClientID)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ URL string }
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode/100 != 2 || out.URL == "" {
		t.Fatalf("upload %s: %d", name, resp.StatusCode)
	}
	return out.URL
}

type runtimeStatus struct {
	Metadata struct{ Generation int64 }
	Status   struct {
		Phase              string
		ObservedGeneration int64
		Restarts           int
		Endpoints          []struct{ URI string }
	}
}

// waitReady polls the runtime until it is Ready at generation gen and
// returns its first endpoint.
func waitReady(t *testing.T, c *servertest.Client, name string, gen int64) runtimeStatus {
	t.Helper()
	var st runtimeStatus
	for i := 0; i < 240; i++ {
		code, body := c.Do("GET", "/api/v1/integration-runtimes/"+name, nil)
		if code == 200 {
			json.Unmarshal(body, &st)
			if st.Status.Phase == "Ready" && st.Status.ObservedGeneration >= gen && len(st.Status.Endpoints) > 0 {
				return st
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("runtime %s not Ready at generation %d: %+v", name, gen, st)
	return st
}

// load calls url until stop is closed and counts failures (errors and
// non-200 answers) and the answers seen.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	bodies     map[string]int
	lastErr    atomic.Value
}

func startLoad(url string, stop <-chan struct{}, wg *sync.WaitGroup) *load {
	l := &load{bodies: map[string]int{}}
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 200000; n++ { // bounded, whatever happens
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url)
				if err != nil {
					l.failed.Add(1)
					l.lastErr.Store(err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					l.failed.Add(1)
					l.lastErr.Store(fmt.Sprintf("%d %s", resp.StatusCode, b))
					continue
				}
				l.ok.Add(1)
				l.mu.Lock()
				l.bodies[string(b)]++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// Editing a runtime's spec rolls it over to the new generation without
// failing a single request of a steady load.
func TestRollingRedeployLosesNoRequest(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t)
	v1 := putBAR(t, admin, "hello-v1", helloBAR(t, "Hello"))
	v2 := putBAR(t, admin, "hello-v2", helloBAR(t, "Bonjour"))
	spec := map[string]any{"metadata": map[string]string{"name": "roll"}, "spec": map[string]any{"barURL": []string{v1}, "replicas": 2}}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/roll", spec); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	st := waitReady(t, admin, "roll", 1)
	url := strings.Replace(st.Status.Endpoints[0].URI, "{name}", "load", 1)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	l := startLoad(url, stop, &wg)
	time.Sleep(500 * time.Millisecond)
	spec["spec"].(map[string]any)["barURL"] = []string{v2}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/roll", spec); code != 200 {
		t.Fatalf("edit: %d %s", code, body)
	}
	waitReady(t, admin, "roll", 2)
	// Keep the load on until the new generation answers, then a little more.
	for i := 0; i < 200; i++ {
		l.mu.Lock()
		n := l.bodies[`{"greeting":"Bonjour, load!"}`+"\n"] + l.bodies[`{"greeting":"Bonjour, load!"}`]
		l.mu.Unlock()
		if n > 50 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("requests: %d ok, %d failed; answers %v", l.ok.Load(), l.failed.Load(), l.bodies)
	if l.failed.Load() != 0 {
		t.Fatalf("%d requests failed during the rollout (last: %v)", l.failed.Load(), l.lastErr.Load())
	}
	if len(l.bodies) < 2 {
		t.Fatalf("the load never saw the new generation: %v", l.bodies)
	}
}

// Killing the control plane leaves runtimes serving; the restarted
// control plane adopts them instead of restarting them.
func TestControlPlaneRestartKeepsTraffic(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t)
	u := putBAR(t, admin, "hello", helloBAR(t, "Hello"))
	spec := map[string]any{"metadata": map[string]string{"name": "steady"}, "spec": map[string]any{"barURL": []string{u}}}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/steady", spec); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	st := waitReady(t, admin, "steady", 1)
	url := strings.Replace(st.Status.Endpoints[0].URI, "{name}", "load", 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	l := startLoad(url, stop, &wg)
	time.Sleep(300 * time.Millisecond)
	s.Kill()
	time.Sleep(time.Second) // traffic with no control plane at all
	s.Restart()
	admin = s.Admin(t)
	after := waitReady(t, admin, "steady", 1)
	time.Sleep(2 * time.Second) // a few reconcile passes of the new control plane
	close(stop)
	wg.Wait()
	t.Logf("requests: %d ok, %d failed", l.ok.Load(), l.failed.Load())
	if l.failed.Load() != 0 || l.ok.Load() == 0 {
		t.Fatalf("%d requests failed across the control-plane restart (last: %v)", l.failed.Load(), l.lastErr.Load())
	}
	if after.Status.Restarts != 0 || strings.Contains(s.Stderr(), `"msg":"replica started"`) {
		t.Fatalf("the restarted control plane restarted the runtime instead of adopting it:\n%s", tail(s.Stderr(), 30))
	}
	// And it still manages it: deleting stops it.
	if code, _ := admin.Do("DELETE", "/api/v1/integration-runtimes/steady", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	for i := 0; i < 120; i++ {
		if _, err := http.Get(url); err != nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatal("the runtime still serves after its deletion")
}

// A runtime's bundle token opens that runtime generation's bundle and
// nothing else; user tokens open no bundle at all.
func TestBundleTokenIsScopedToOneRuntime(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t)
	u := putBAR(t, admin, "hello", helloBAR(t, "Hello"))
	uids := map[string]string{}
	for _, name := range []string{"a", "b"} {
		spec := map[string]any{"metadata": map[string]string{"name": name}, "spec": map[string]any{"barURL": []string{u}}}
		code, body := admin.Do("PUT", "/api/v1/integration-runtimes/"+name, spec)
		if code != 201 {
			t.Fatalf("create %s: %d %s", name, code, body)
		}
		var rt struct{ Metadata struct{ UID string } }
		json.Unmarshal(body, &rt)
		uids[name] = rt.Metadata.UID
		waitReady(t, admin, name, 1)
	}
	tokens, _ := filepath.Glob(filepath.Join(s.DataDir, "runtimes", "*", "a", "gen-*", "bundle.token"))
	if len(tokens) != 1 {
		t.Fatalf("runtime a's bundle token files: %v", tokens)
	}
	if fi, err := os.Stat(tokens[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bundle token file mode: %v %v", fi.Mode().Perm(), err)
	}
	tokA, _ := os.ReadFile(tokens[0])
	bundle := func(uid string, gen int, token string) int {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/internal/v1/runtimes/%s/generations/%d/bundle", s.URL, uid, gen), nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && !strings.Contains(string(b), "bars/") {
			t.Fatalf("bundle holds no bars/: %d bytes", len(b))
		}
		return resp.StatusCode
	}
	for _, c := range []struct {
		name  string
		uid   string
		gen   int
		token string
		want  int
	}{
		{"own bundle", uids["a"], 1, string(tokA), 200},
		{"another runtime's bundle", uids["b"], 1, string(tokA), 403},
		{"another generation", uids["a"], 2, string(tokA), 403},
		{"a user's access token", uids["a"], 1, admin.Token, 403},
		{"no token", uids["a"], 1, "", 401},
	} {
		if got := bundle(c.uid, c.gen, c.token); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if strings.Contains(s.Stderr(), strings.TrimSpace(string(tokA))) {
		t.Fatal("a bundle token reached the control plane's log")
	}
}

// A BAR that cannot be fetched shows as a condition with the reason, not
// as a crash; the runtime's logs can be read and followed.
func TestFetchFailureConditionAndLogs(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t)
	// Nothing listens on port 1 of the loopback: the fetch fails fast.
	spec := map[string]any{"metadata": map[string]string{"name": "unreachable"},
		"spec": map[string]any{"barURL": []string{"https://127.0.0.1:1/bars/x.bar"}}}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/unreachable", spec); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var st struct {
		Status struct {
			Phase      string
			Conditions []struct{ Type, Status, Reason, Message string }
		}
	}
	for i := 0; i < 120; i++ {
		_, body := admin.Do("GET", "/api/v1/integration-runtimes/unreachable", nil)
		json.Unmarshal(body, &st)
		if st.Status.Phase == "Failed" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	found := false
	for _, c := range st.Status.Conditions {
		if c.Reason == "BARFetchFailed" && c.Status == "False" && strings.Contains(c.Message, "127.0.0.1:1") {
			found = true
		}
	}
	if st.Status.Phase != "Failed" || !found {
		t.Fatalf("unreachable BAR: status %+v", st.Status)
	}

	u := putBAR(t, admin, "hello", helloBAR(t, "Hello"))
	ok := map[string]any{"metadata": map[string]string{"name": "logged"}, "spec": map[string]any{"barURL": []string{u}}}
	admin.Do("PUT", "/api/v1/integration-runtimes/logged", ok)
	ready := waitReady(t, admin, "logged", 1)

	// The runtime's own errors have the control plane's shape: same
	// members in the same order, same kind of reason word.
	base, _, _ := strings.Cut(ready.Status.Endpoints[0].URI, "/hello/")
	resp404, err := http.Get(base + "/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	rtBody, _ := io.ReadAll(resp404.Body)
	resp404.Body.Close()
	_, cpBody := admin.Do("GET", "/api/v1/integration-runtimes/nowhere", nil)
	if rk, ck := topLevelKeys(t, rtBody), topLevelKeys(t, cpBody); resp404.StatusCode != 404 || strings.Join(rk, ",") != strings.Join(ck, ",") ||
		!strings.HasPrefix(string(rtBody), `{"error":"Internal error","code":404,"reason":"NotFound",`) ||
		!strings.HasPrefix(string(cpBody), `{"error":"Internal error","code":404,"reason":"NotFound",`) {
		t.Errorf("runtime error %d %s\ncontrol plane error %s", resp404.StatusCode, rtBody, cpBody)
	}
	code, body := admin.Do("GET", "/api/v1/integration-runtimes/logged/logs?tail=50", nil)
	if code != 200 || !strings.Contains(string(body), "ready") {
		t.Fatalf("logs: %d %s", code, body)
	}
	// The runtime's log and the control plane's (which logs for the local
	// backend and the reconciler too) carry each key once per line.
	checkUniqueKeys(t, "runtime log", string(body))
	checkUniqueKeys(t, "control plane log", s.Stderr())
	// Follow streams as server-sent events.
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/integration-runtimes/logged/logs?tail=5&follow=true", nil)
	req.Header.Set("Authorization", "Bearer "+admin.Token)
	req.Header.Set("X-IBM-Client-Id", admin.ClientID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	if resp.Header.Get("Content-Type") != "text/event-stream" || !strings.HasPrefix(string(buf[:n]), "data: ") {
		t.Fatalf("follow: %s %q", resp.Header.Get("Content-Type"), buf[:n])
	}
}

// A runtime naming a BAR file and a configuration that do not exist yet
// is accepted, says what is missing, and starts once they appear.
func TestRuntimeStartsWhenWhatItNamesAppears(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t)
	spec := map[string]any{"metadata": map[string]string{"name": "early"}, "spec": map[string]any{
		"barURL": []string{s.URL + "/api/v1/bar-files/later/content"}, "configurations": []string{"later-conf"}}}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/early", spec); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var st struct {
		Status struct {
			Phase      string
			Conditions []struct{ Type, Status, Reason, Message string }
		}
	}
	for i := 0; i < 120; i++ {
		_, body := admin.Do("GET", "/api/v1/integration-runtimes/early", nil)
		json.Unmarshal(body, &st)
		if len(st.Status.Conditions) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	said := ""
	for _, c := range st.Status.Conditions {
		if c.Type == "DependenciesAvailable" && c.Status == "False" {
			said = c.Message
		}
	}
	if st.Status.Phase != "Pending" || !strings.Contains(said, "BAR file later") || !strings.Contains(said, "configuration later-conf") {
		t.Fatalf("status while things are missing: %+v", st.Status)
	}
	putBAR(t, admin, "later", helloBAR(t, "Hello"))
	body := map[string]any{"metadata": map[string]string{"name": "later-conf"},
		"spec": map[string]any{"type": "serverconf", "data": "dmFsdWVzOiB7fQo="}} // "values: {}\n"
	if code, b := admin.Do("PUT", "/api/v1/configurations/later-conf", body); code != 201 {
		t.Fatalf("configuration: %d %s", code, b)
	}
	ready := waitReady(t, admin, "early", 1)
	if resp, err := http.Get(strings.Replace(ready.Status.Endpoints[0].URI, "{name}", "x", 1)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the runtime does not answer once started: %v %v", err, resp)
	}
}

// checkUniqueKeys fails the test for a JSON log line of text that holds a
// key twice (`"component":"a",…,"component":"b"`).
func checkUniqueKeys(t *testing.T, what, text string) {
	t.Helper()
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		n++
		dups, err := obstest.DuplicateKeys([]byte(line))
		if err != nil || len(dups) > 0 {
			t.Errorf("%s: line with duplicate keys %v (%v): %s", what, dups, err, line)
		}
	}
	if n == 0 {
		t.Errorf("%s: no JSON lines to check:\n%s", what, text)
	}
}

// topLevelKeys lists the members of a JSON object in their order.
func topLevelKeys(t *testing.T, body []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", body)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
	}
	return keys
}
