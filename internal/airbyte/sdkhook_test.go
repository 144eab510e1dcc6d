package airbyte_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// clientCredentialsHook replays what the Airbyte Python SDK's
// client-credentials hook (airbyte_api/_hooks/clientcredentials.py) does
// on the wire: it fetches a token with a form-encoded client_credentials
// request, insists on token_type == "Bearer" exactly, keeps the token until
// fewer than 60 s of it remain (by its own clock), fetches one on every
// call when the answer has no expires_in, and drops it after a 401.
type clientCredentialsHook struct {
	tokenURL, clientID, clientSecret string
	now                              func() time.Time
	http                             *http.Client

	token     string
	expiresAt *time.Time
	fetches   int
}

func (h *clientCredentialsHook) beforeRequest(req *http.Request) error {
	if h.token == "" || (h.expiresAt == nil) || h.expiresAt.Sub(h.now()) < 60*time.Second {
		if err := h.fetch(); err != nil {
			return err
		}
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	return nil
}

func (h *clientCredentialsHook) fetch() error {
	h.fetches++
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {h.clientID}, "client_secret": {h.clientSecret}}
	resp, err := h.http.Post(h.tokenURL, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token request: status %d", resp.StatusCode)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   *int64 `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return err
	}
	if tok.TokenType != "Bearer" {
		return errors.New("unexpected token type " + tok.TokenType)
	}
	h.token, h.expiresAt = tok.AccessToken, nil
	if tok.ExpiresIn != nil {
		at := h.now().Add(time.Duration(*tok.ExpiresIn) * time.Second)
		h.expiresAt = &at
	}
	return nil
}

func (h *clientCredentialsHook) afterResponse(resp *http.Response) {
	if resp.StatusCode == http.StatusUnauthorized {
		h.token, h.expiresAt = "", nil
	}
}

// call is one SDK call through the hook.
func (h *clientCredentialsHook) call(method, u string) (int, error) {
	req, _ := http.NewRequest(method, u, nil)
	if err := h.beforeRequest(req); err != nil {
		return 0, err
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	h.afterResponse(resp)
	return resp.StatusCode, nil
}

// TestAirbytePythonSDKHook runs the hook's life against a real server, its
// time driven by a fake clock: one fetch while the token has 60 s or more
// left, a new one below that, a dropped session after the application is
// deleted, and no token for a deleted application.
func TestAirbytePythonSDKHook(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	admin := srv.Admin(t)
	code, body := admin.Do("POST", "/api/public/v1/applications", map[string]string{"name": "sdk"})
	if code != 200 {
		t.Fatalf("create application: %d %s", code, body)
	}
	var app struct{ ID, ClientID, ClientSecret string }
	if err := json.Unmarshal(body, &app); err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(0)
	hook := &clientCredentialsHook{tokenURL: srv.URL + "/api/public/v1/applications/token", clientID: app.ClientID, clientSecret: app.ClientSecret,
		now: clk.Now, http: &http.Client{Timeout: 30 * time.Second}}
	list := srv.URL + "/api/public/v1/applications"

	if code, err := hook.call("GET", list); err != nil || code != 200 || hook.fetches != 1 {
		t.Fatalf("first call: %d %v, %d fetches", code, err, hook.fetches)
	}
	// The default lifetime is 900 s: at 840 s in, 60 s remain — kept.
	clk.Add(840 * time.Second)
	if code, err := hook.call("GET", list); err != nil || code != 200 || hook.fetches != 1 {
		t.Fatalf("with 60 s left: %d %v, %d fetches; want the token kept", code, err, hook.fetches)
	}
	clk.Add(time.Second)
	if code, err := hook.call("GET", list); err != nil || code != 200 || hook.fetches != 2 {
		t.Fatalf("with 59 s left: %d %v, %d fetches; want a new token", code, err, hook.fetches)
	}
	if code, _ := admin.Do("DELETE", "/api/public/v1/applications/"+app.ID, nil); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	if code, err := hook.call("GET", list); err != nil || code != 401 || hook.token != "" {
		t.Fatalf("after the delete: %d %v; want 401 and the session dropped", code, err)
	}
	if _, err := hook.call("GET", list); err == nil || !strings.Contains(err.Error(), "status 401") || hook.fetches != 3 {
		t.Fatalf("token for a deleted application: %v after %d fetches; want a refused fetch", err, hook.fetches)
	}
}

// TestHookChecksTokenTypeExactly shows the replay's token_type check can
// fail: a server (a stand-in written here, not Sluice) answering
// "bearer" in lower case is refused, as the Python SDK refuses it.
func TestHookChecksTokenTypeExactly(t *testing.T) {
	lower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"access_token":"x","token_type":"bearer","expires_in":900}`))
	}))
	defer lower.Close()
	clk := clocktest.New(0)
	hook := &clientCredentialsHook{tokenURL: lower.URL, clientID: "c", clientSecret: "s", now: clk.Now, http: lower.Client()}
	if _, err := hook.call("GET", lower.URL); err == nil || !strings.Contains(err.Error(), "unexpected token type") {
		t.Fatalf("lower-case token type accepted: %v", err)
	}
}
