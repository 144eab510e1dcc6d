package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// TestPublishedAPIEnforcedByRuntimes is issue 13's walk-through on real
// processes: a control plane, a runtime of 2 replicas (one port, shared
// with SO_REUSEPORT), a published API with a client-id plan and an oauth
// plan, a consumer app with a credential. Propagation delays are logged,
// not asserted against a clock: the waits below are hang guards.
func TestPublishedAPIEnforcedByRuntimes(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t)
	must := func(want int, method, path string, body any) []byte {
		t.Helper()
		code, b := admin.Do(method, path, body)
		if code != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
		}
		return b
	}
	u := putBAR(t, admin, "hello", helloBAR(t, "Hello"))
	must(201, "PUT", "/api/v1/integration-runtimes/shop", map[string]any{"spec": map[string]any{"barURL": []string{u}, "replicas": 2}})
	st := waitReady(t, admin, "shop", 1)
	endpoint := strings.Replace(st.Status.Endpoints[0].URI, "{name}", "world", 1)

	must(201, "PUT", "/api/v1/apis/hello", map[string]any{"spec": map[string]any{"version": "1.0.0", "barFile": "hello", "basePath": "/hello"}})
	must(201, "PUT", "/api/v1/plans/key", map[string]any{"spec": map[string]any{"apis": []string{"hello"}, "auth": "client-id", "clientSecret": true, "rateLimit": "3/1m"}})
	must(201, "PUT", "/api/v1/plans/oauth", map[string]any{"spec": map[string]any{"apis": []string{"hello"}, "auth": "oauth"}})
	must(201, "POST", "/api/v1/catalogs/sandbox/consumer-orgs", map[string]any{"metadata": map[string]any{"name": "acme"}})
	app := "/api/v1/catalogs/sandbox/consumer-orgs/acme/apps/"
	for _, name := range []string{"shop", "stranger"} {
		must(201, "POST", "/api/v1/catalogs/sandbox/consumer-orgs/acme/apps", map[string]any{"metadata": map[string]any{"name": name}})
	}
	var cred, other struct {
		ClientID, ClientSecret string
		Metadata               struct{ ID string }
	}
	// The subscribed app's credential is a lease (it expires in an hour),
	// as the walk-through has it; the stranger's is permanent.
	json.Unmarshal(must(201, "POST", app+"shop/leases", map[string]any{"ttl": "1h"}), &cred)
	json.Unmarshal(must(201, "POST", app+"stranger/credentials", map[string]any{"spec": map[string]any{"title": "first"}}), &other)
	for plan, sub := range map[string]string{"key": "shop-key", "oauth": "shop-oauth"} {
		must(201, "PUT", "/api/v1/subscriptions/"+sub, map[string]any{"spec": map[string]any{"plan": plan, "app": "sandbox/acme/shop"}})
	}
	// An app token from the control plane's token endpoint.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {cred.ClientID}, "client_secret": {cred.ClientSecret}}
	resp, err := http.PostForm(s.URL+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("app token: %d", resp.StatusCode)
	}

	call := func(headers ...string) int {
		req, _ := http.NewRequest("GET", endpoint, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	key := []string{"X-IBM-Client-Id", cred.ClientID, "X-IBM-Client-Secret", cred.ClientSecret}
	bearer := []string{"Authorization", "Bearer " + tok.AccessToken}
	// until calls repeatedly (both replicas answer some of them) until
	// n calls in a row answer want, and returns how long that took.
	until := func(what string, want, n int, headers ...string) time.Duration {
		t.Helper()
		start := time.Now()
		row := 0
		for deadline := start.Add(30 * time.Second); time.Now().Before(deadline); {
			if call(headers...) == want {
				if row++; row == n {
					return time.Since(start)
				}
				continue
			}
			row = 0
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: %d calls in a row never all answered %d", what, n, want)
		return 0
	}
	t.Logf("published: open → 401 after %s", until("published API without credentials", 401, 10))
	until("oauth plan", 200, 10, bearer...)
	if got := call(key...); got != 200 {
		t.Errorf("client-id plan: %d", got)
	}
	if got := call(key[:2]...); got != 401 {
		t.Errorf("client-id plan without the secret it needs: %d", got)
	}
	if got := call("X-IBM-Client-Id", other.ClientID, "X-IBM-Client-Secret", other.ClientSecret); got != 403 {
		t.Errorf("an app with no subscription: %d", got)
	}
	// Rate limit: 3 a minute per replica on the key plan (2 calls are spent).
	limited := false
	for i := 0; i < 12 && !limited; i++ {
		limited = call(key...) == http.StatusTooManyRequests
	}
	if !limited {
		t.Error("the key plan's rate limit never answered 429")
	}
	// Unsubscribe from oauth: 403 for the token.
	must(204, "DELETE", "/api/v1/subscriptions/shop-oauth", nil)
	t.Logf("unsubscribe → 403 on both replicas after %s", until("unsubscribed", 403, 20, bearer...))
	must(201, "PUT", "/api/v1/subscriptions/shop-oauth", map[string]any{"spec": map[string]any{"plan": "oauth", "app": "sandbox/acme/shop"}})
	until("subscribed again", 200, 20, bearer...)

	// The control plane goes away: the runtimes keep enforcing.
	s.Kill()
	time.Sleep(500 * time.Millisecond)
	for i := 0; i < 10; i++ {
		if got := call(bearer...); got != 200 {
			t.Fatalf("with the control plane down, a subscribed app's token: %d", got)
		}
		if got := call(); got != 401 {
			t.Fatalf("with the control plane down, no credentials: %d", got)
		}
	}
	s.Restart()
	admin = s.Admin(t)
	waitReady(t, admin, "shop", 1)

	// Revoke the lease: its key and its token stop on both replicas.
	revoked := time.Now()
	must(204, "DELETE", app+"shop/leases/"+cred.Metadata.ID, nil)
	until("revoked token", 401, 20, bearer...)
	t.Logf("revocation → 401 on both replicas after %s", time.Since(revoked))
	if got := call(key...); got != 401 {
		t.Errorf("revoked key: %d", got)
	}
}
