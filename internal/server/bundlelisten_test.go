package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// --bundle-listen serves what runtime replicas fetch and nothing else:
// a runtime of the local backend (which is handed that address, as pods
// are with --kube-bundle-url) gets its bundle and becomes Ready through
// it, while every other route of the API, the dashboard and the token
// endpoints answer 404 there.
func TestBundleListenerServesOnlyTheRuntimesRoutes(t *testing.T) {
	baddr := servertest.FreeAddr(t)
	s := servertest.Start(t, servertest.Options{Args: []string{"--bundle-listen", baddr}})
	admin := s.Admin(t)
	burl := "http://" + baddr

	data, _, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", "hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", s.URL+"/api/v1/bar-files/hello", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+admin.Token)
	req.Header.Set("X-IBM-Client-Id", admin.ClientID)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up struct{ URL string }
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != 201 || up.URL == "" {
		t.Fatalf("upload: %d %+v", resp.StatusCode, up)
	}
	rt := map[string]any{"metadata": map[string]any{"name": "hello"}, "spec": map[string]any{"barURL": []string{up.URL}, "replicas": 1}}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/hello", rt); code != 201 {
		t.Fatalf("put runtime: %d %s", code, body)
	}
	var uid string
	for i := 0; ; i++ {
		_, body := admin.Do("GET", "/api/v1/integration-runtimes/hello", nil)
		var got struct {
			Metadata struct{ UID string }
			Status   struct{ Phase string }
		}
		json.Unmarshal(body, &got)
		if got.Status.Phase == "Ready" {
			uid = got.Metadata.UID
			break
		}
		if i > 1200 {
			t.Fatalf("hello not Ready: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// It was handed the bundle listener's URL (its command line says so).
	if !runtimeFetchesFrom(t, burl+"/internal/v1/runtimes/"+uid+"/") {
		t.Fatalf("no runtime process of %s has --bundle-url on %s", uid, burl)
	}

	get := func(method, path string, token bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, burl+path, nil)
		if token {
			req.Header.Set("Authorization", "Bearer "+admin.Token)
			req.Header.Set("X-IBM-Client-Id", admin.ClientID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The runtime's routes are there: a token that is not the runtime's
	// is refused by them (an admin's opens nothing there either).
	for _, p := range []string{"/bundle", "/gateway"} {
		path := "/internal/v1/runtimes/" + uid + "/generations/1" + p
		if code, body := get("GET", path, false); code != 401 {
			t.Errorf("GET %s without a token = %d %s, want 401", path, code, body)
		}
		if code, body := get("GET", path, true); code != 403 {
			t.Errorf("GET %s with an admin's token = %d %s, want 403", path, code, body)
		}
	}
	if code, _ := get("GET", "/healthz", false); code != 200 {
		t.Errorf("GET /healthz = %d", code)
	}
	// Everything else is not.
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/whoami"}, {"GET", "/api/v1/integration-runtimes"}, {"GET", "/api/v1/integration-runtimes/hello"},
		{"GET", "/api/v1/bar-files/hello/content"}, {"GET", "/api/v1/configurations"}, {"GET", "/api/v1/audit"},
		{"POST", "/api/v1/tokens"}, {"POST", "/oauth/token"}, {"POST", "/identity/token"}, {"GET", "/readyz"}, {"GET", "/"}, {"GET", "/runtimes"},
		{"POST", "/api/token"}, {"GET", "/api/orgs"}, {"GET", "/.well-known/oauth-authorization-server"},
	} {
		code, body := get(c.method, c.path, true)
		if code != 404 || !strings.Contains(body, "NotFound") {
			t.Errorf("%s %s on the bundle listener = %d %s, want a 404", c.method, c.path, code, body)
		}
		// …and the same call on the API's listener is routed (not 404),
		// so the list above names real routes.
		req, _ := http.NewRequest(c.method, s.URL+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+admin.Token)
		req.Header.Set("X-IBM-Client-Id", admin.ClientID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 404 {
			t.Errorf("%s %s on the API listener = 404: not a route", c.method, c.path)
		}
	}
}

// runtimeFetchesFrom reports whether a `sluice runtime` process on this
// host has a --bundle-url starting with prefix (Linux: /proc).
func runtimeFetchesFrom(t *testing.T, prefix string) bool {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc to read command lines from")
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(raw), "\x00")
		for i, a := range args {
			if a == "--bundle-url" && i+1 < len(args) && strings.HasPrefix(args[i+1], prefix) {
				return true
			}
			if strings.HasPrefix(a, "--bundle-url="+prefix) {
				return true
			}
		}
	}
	return false
}
