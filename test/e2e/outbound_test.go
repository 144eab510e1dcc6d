package e2e

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// condition polls a runtime until one of its conditions has the wanted
// status and reason, and returns its message.
func condition(t *testing.T, c *servertest.Client, name, typ, status, reason string) string {
	t.Helper()
	var st struct {
		Status struct {
			Conditions []struct{ Type, Status, Reason, Message string }
		}
	}
	for i := 0; i < 240; i++ {
		_, body := c.Do("GET", "/api/v1/integration-runtimes/"+name, nil)
		json.Unmarshal(body, &st)
		for _, cd := range st.Status.Conditions {
			if cd.Type == typ && cd.Status == status && cd.Reason == reason {
				return cd.Message
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("runtime %s never had %s=%s (%s): %+v", name, typ, status, reason, st.Status.Conditions)
	return ""
}

// TestExternalBARFetchesFollowEgressAndBarAuthBinding: an external barURL
// on this host is refused until the instance's egress allow-list opens it
// (nothing reaches the server before), and a barauth configuration's
// password goes only to the hosts and URL prefixes it names: without
// appliesTo it goes nowhere, and the runtime says so.
func TestExternalBARFetchesFollowEgressAndBarAuthBinding(t *testing.T) {
	hello := helloBAR(t, "Fetched")
	var mu sync.Mutex
	var got []string // path and Authorization of every request the repository saw
	repo := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if u, p, ok := r.BasicAuth(); !ok || u != "repo-user" || p != "repo-pass-77" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write(hello)
	}))
	defer repo.Close()
	seen := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: repo.Certificate().Raw}))
	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t)
	barauth := func(appliesTo []string) {
		t.Helper()
		data := map[string]any{"authType": "BASIC_AUTH", "credentials": map[string]string{"username": "repo-user", "password": "repo-pass-77", "caCert": ca}}
		if appliesTo != nil {
			data["appliesTo"] = appliesTo
		}
		raw, _ := json.Marshal(data)
		body := map[string]any{"metadata": map[string]string{"name": "repo-auth"}, "spec": map[string]any{"type": "barauth", "data": base64.StdEncoding.EncodeToString(raw)}}
		if code, b := admin.Do("PUT", "/api/v1/configurations/repo-auth", body); code/100 != 2 {
			t.Fatalf("barauth: %d %s", code, b)
		}
	}
	runtime := func(name, url string) {
		t.Helper()
		spec := map[string]any{"metadata": map[string]string{"name": name}, "spec": map[string]any{"barURL": []string{url}, "configurations": []string{"repo-auth"}}}
		if code, b := admin.Do("PUT", "/api/v1/integration-runtimes/"+name, spec); code/100 != 2 {
			t.Fatalf("runtime %s: %d %s", name, code, b)
		}
	}

	// 1. Loopback is closed: the fetch is refused before connecting.
	barauth([]string{repo.URL + "/bars/"})
	runtime("ext", repo.URL+"/bars/hello.bar")
	msg := condition(t, admin, "ext", "DependenciesAvailable", "False", "BARFetchFailed")
	if !strings.Contains(msg, "egress policy refuses") {
		t.Errorf("fetch through a closed egress policy: %s", msg)
	}
	if n := len(seen()); n != 0 {
		t.Fatalf("the repository was reached %d times through a closed egress policy", n)
	}

	// 2. The allow-list opens it (admins only, audited).
	hostPort := strings.TrimPrefix(repo.URL, "https://")
	if code, _ := admin.Do("PUT", "/api/v1/egress-policy", map[string]any{"allow": []string{hostPort}}); code != 200 {
		t.Fatalf("set the egress allow-list: %d", code)
	}
	waitReady(t, admin, "ext", 1)
	if !strings.Contains(condition(t, admin, "ext", "BarAuthApplies", "True", "Applies"), "repo-auth") {
		t.Error("BarAuthApplies does not name the configuration")
	}
	_, audit := admin.Do("GET", "/api/v1/audit?actor=user:admin", nil)
	if !strings.Contains(string(audit), `"egressPolicy.update"`) {
		t.Errorf("the allow-list change is not in the audit: %s", audit)
	}

	// 3. A barURL outside the binding gets no credentials.
	runtime("other", repo.URL+"/elsewhere/hello.bar")
	condition(t, admin, "other", "BarAuthApplies", "False", "NotForURL")
	condition(t, admin, "other", "DependenciesAvailable", "False", "BARFetchFailed")

	// 4. A barauth without appliesTo (as every one made before bindings)
	// applies nowhere, and the runtime says so.
	barauth(nil)
	runtime("ext", repo.URL+"/bars/hello.bar?v=2") // a new generation, fetched afresh
	if msg := condition(t, admin, "ext", "BarAuthApplies", "False", "NoBinding"); !strings.Contains(msg, "appliesTo") {
		t.Errorf("NoBinding message: %s", msg)
	}
	condition(t, admin, "ext", "DependenciesAvailable", "False", "BARFetchFailed")

	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("repo-user:repo-pass-77"))
	withCreds := 0
	for _, r := range seen() {
		path, auth, _ := strings.Cut(r, " ")
		if auth == basic {
			withCreds++
			if path != "/bars/hello.bar" {
				t.Errorf("credentials sent to %s, outside the binding", path)
			}
		}
	}
	if withCreds == 0 {
		t.Error("the bound fetch never carried the credentials")
	}
	if last := seen()[len(seen())-1]; strings.Contains(last, "Basic") {
		t.Errorf("the unbound fetch carried credentials: %s", last)
	}
}
