package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// chromium finds a headless-capable Chromium. Outside CI a machine without
// one skips the browser tests; CI sets SLUICE_REQUIRE_CHROMIUM so a
// missing browser fails instead of passing silently.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SLUICE_REQUIRE_CHROMIUM") != "" {
		t.Fatal("SLUICE_REQUIRE_CHROMIUM is set but no chromium is installed: apt-get install -y chromium")
	}
	t.Skip("browser tests skipped: no chromium on PATH (apt-get install -y chromium to run them)")
	return ""
}

// newTab starts a headless Chromium with a tab of its own (its own
// cookies) at 1280×800. On failure the test saves a screenshot of the
// tab's last page and says where.
func newTab(t *testing.T, exe, label string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1280, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	// The one bound on the whole browser session: a hung page fails the
	// test instead of stalling it; no step asserts on time.
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		if t.Failed() {
			var png []byte
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := chromedp.Run(sctx, chromedp.FullScreenshot(&png, 100)); err == nil {
				path := filepath.Join(os.TempDir(), fmt.Sprintf("sluice-browser-%s-%d.png", label, time.Now().UnixNano()))
				if os.WriteFile(path, png, 0o644) == nil {
					t.Logf("screenshot of the %s tab's last page: %s", label, path)
				}
			}
			cancel()
		}
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	return ctx
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// loginActions logs in through the form as a person would, by keyboard.
func loginActions(base, instance, user, password string) []chromedp.Action {
	return []chromedp.Action{
		chromedp.Navigate(base + "/login"),
		chromedp.WaitVisible("#instance", chromedp.ByQuery),
		chromedp.SendKeys("#instance", instance, chromedp.ByQuery),
		chromedp.SendKeys("#username", user, chromedp.ByQuery),
		chromedp.SendKeys("#password", password+"\n", chromedp.ByQuery),
		chromedp.WaitVisible("form.who", chromedp.ByQuery),
	}
}

func TestBrowser(t *testing.T) {
	exe := chromium(t)
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none"}})
	c := srv.Creds
	admin := srv.Login(t, c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)
	tab := newTab(t, exe, "admin")

	run(t, tab, "log in", loginActions(srv.URL, c.InstanceID, c.Username, c.Password)...)

	// Generate an API key and a public API credential, read them off the
	// show-once pages, and exchange them for a token.
	var key, clientID, clientSecret string
	run(t, tab, "generate an API key",
		chromedp.Navigate(srv.URL+"/settings/api-keys"),
		chromedp.SendKeys("#key-name", "browser", chromedp.ByQuery),
		chromedp.Submit("#key-name", chromedp.ByQuery),
		chromedp.WaitVisible("#api-key", chromedp.ByQuery),
		chromedp.Value("#api-key", &key, chromedp.ByQuery))
	// "Download as JSON" builds the file in the page: catch the blob it
	// hands to the browser and read it back.
	var downloaded string
	run(t, tab, "download the key as JSON",
		chromedp.Evaluate(`window.sluiceBlobs = []; (function (o) { URL.createObjectURL = function (b) { window.sluiceBlobs.push(b); return o.call(URL, b); }; })(URL.createObjectURL); 0`, nil),
		chromedp.Click(`button[data-download]`, chromedp.ByQuery),
		chromedp.Evaluate(`window.sluiceBlobs[0].text()`, &downloaded, func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams {
			return p.WithAwaitPromise(true)
		}))
	var file map[string]string
	if err := json.Unmarshal([]byte(downloaded), &file); err != nil || file["apikey"] != key || file["name"] != "browser" {
		t.Fatalf("downloaded JSON: %v %s", err, downloaded)
	}
	run(t, tab, "generate a credential",
		chromedp.Navigate(srv.URL+"/settings/credentials"),
		chromedp.SendKeys("#cred-name", "browser", chromedp.ByQuery),
		chromedp.Submit("#cred-name", chromedp.ByQuery),
		chromedp.WaitVisible("#client-secret", chromedp.ByQuery),
		chromedp.Value("#client-id", &clientID, chromedp.ByQuery),
		chromedp.Value("#client-secret", &clientSecret, chromedp.ByQuery))
	// As a script would: curl, when the machine has it (CI does).
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command(curl, "-sS", "-X", "POST", srv.URL+"/api/v1/tokens", "-H", "Content-Type: application/json",
			"-H", "X-IBM-Client-Id: "+clientID, "-H", "X-IBM-Client-Secret: "+clientSecret, "-H", "x-ibm-instance-id: "+c.InstanceID,
			"-d", `{"apiKey":"`+key+`"}`).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"access_token"`) {
			t.Fatalf("curl token exchange with what the dashboard showed: %v %s", err, out)
		}
	} else if resp, body, err := servertest.Exchange(srv.URL, clientID, clientSecret, c.InstanceID, key); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token exchange with what the dashboard showed: %v %v %s", err, resp, body)
	}

	// Upload a BAR file through the file input and see its endpoint listed.
	data, info, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", "hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	barPath := filepath.Join(t.TempDir(), "hello.bar")
	if err := os.WriteFile(barPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var listed string
	run(t, tab, "upload a BAR file",
		chromedp.Navigate(srv.URL+"/bar-files"),
		chromedp.SetUploadFiles("#bar-file", []string{barPath}, chromedp.ByQuery),
		chromedp.Submit("#bar-file", chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery),
		chromedp.Text("main", &listed, chromedp.ByQuery))
	if !strings.Contains(listed, "hello") || (len(info.Endpoints) > 0 && !strings.Contains(listed, info.Endpoints[0].Path)) {
		t.Fatalf("the BAR list after upload does not show hello and its endpoints:\n%s", listed)
	}
	if code, _ := admin.Do("GET", "/api/v1/bar-files/hello", nil); code != 200 {
		t.Fatalf("the API does not see the uploaded BAR: %d", code)
	}

	// Create a configuration from a file with the type chosen from the list.
	cfgPath := filepath.Join(t.TempDir(), "dbparms.txt")
	if err := os.WriteFile(cfgPath, []byte("db1 alice browser-canary-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, tab, "create a configuration",
		chromedp.Navigate(srv.URL+"/configurations"),
		chromedp.SendKeys("#cfg-name", "db-creds", chromedp.ByQuery),
		chromedp.SetValue("#cfg-type", "setdbparms", chromedp.ByQuery),
		chromedp.SetUploadFiles("#cfg-file", []string{cfgPath}, chromedp.ByQuery),
		chromedp.Submit("#cfg-name", chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery),
		chromedp.Text("main", &listed, chromedp.ByQuery))
	if !strings.Contains(listed, "db-creds") || strings.Contains(listed, "browser-canary-pw") {
		t.Fatalf("configuration list: %s", listed)
	}

	// A viewer, in a browser of their own, sees no write buttons.
	const pw = "viewer-password-123"
	if code, body := admin.Do("PUT", "/api/v1/users/vera", map[string]any{"metadata": map[string]any{"name": "vera"},
		"spec": map[string]any{"role": "viewer", "password": pw}}); code != 201 {
		t.Fatalf("create viewer = %d %s", code, body)
	}
	viewer := newTab(t, exe, "viewer")
	run(t, viewer, "viewer logs in", loginActions(srv.URL, c.InstanceID, "vera", pw)...)
	for _, page := range []string{"/runtimes", "/bar-files", "/configurations"} {
		var forms int
		run(t, viewer, "viewer looks at "+page,
			chromedp.Navigate(srv.URL+page),
			chromedp.WaitVisible("main h1", chromedp.ByQuery),
			chromedp.Evaluate(`document.querySelectorAll("main form[method=post], main button").length`, &forms))
		if forms != 0 {
			t.Errorf("the viewer's %s page has %d forms or buttons, want none", page, forms)
		}
	}

	// Delete it all, by the buttons.
	run(t, tab, "delete the configuration",
		chromedp.Navigate(srv.URL+"/configurations"),
		chromedp.Click(`button[aria-label="Delete configuration db-creds"]`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))
	run(t, tab, "delete the BAR file",
		chromedp.Navigate(srv.URL+"/bar-files"),
		chromedp.Click(`button[aria-label="Delete BAR file hello"]`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))
	run(t, tab, "delete the credential",
		chromedp.Navigate(srv.URL+"/settings/credentials"),
		chromedp.Click(`button[aria-label="Delete credential browser"]`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))
	for _, path := range []string{"/api/v1/configurations/db-creds", "/api/v1/bar-files/hello", "/api/v1/credentials/browser"} {
		if code, _ := admin.Do("GET", path, nil); code != 404 {
			t.Errorf("GET %s after deleting it in the browser = %d, want 404", path, code)
		}
	}
	if resp, _, _ := servertest.Exchange(srv.URL, clientID, clientSecret, c.InstanceID, key); resp == nil || resp.StatusCode == http.StatusOK {
		t.Errorf("the deleted credential still exchanges")
	}

	// Screenshots for a person to look at, when asked for.
	if dir := os.Getenv("SLUICE_SCREENSHOTS"); dir != "" {
		for _, p := range []string{"/runtimes", "/bar-files", "/configurations", "/settings/api-keys", "/settings/credentials", "/settings/identities", "/settings/audit", "/api-spec"} {
			var png []byte
			run(t, tab, "screenshot "+p, chromedp.Navigate(srv.URL+p), chromedp.FullScreenshot(&png, 100))
			_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(strings.Trim(p, "/"), "/", "-")+".png"), png, 0o644)
		}
		var png []byte
		run(t, tab, "narrow screenshot", chromedp.EmulateViewport(400, 800), chromedp.Navigate(srv.URL+"/settings/api-keys"), chromedp.FullScreenshot(&png, 100))
		_ = os.WriteFile(filepath.Join(dir, "narrow-api-keys.png"), png, 0o644)
	}
}

// TestBrowserRuntime creates a runtime in the dashboard on the local
// backend and watches it turn Ready on the page without a reload, then
// calls the endpoint the page shows.
func TestBrowserRuntime(t *testing.T) {
	exe := chromium(t)
	srv := servertest.Start(t, servertest.Options{})
	c := srv.Creds
	admin := srv.Login(t, c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)
	data, _, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", "hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	barPath := filepath.Join(t.TempDir(), "hello.bar")
	if err := os.WriteFile(barPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tab := newTab(t, exe, "runtime")
	run(t, tab, "log in", loginActions(srv.URL, c.InstanceID, c.Username, c.Password)...)
	// The Upload button (not form.submit()) goes through the progress script.
	var where string
	run(t, tab, "upload a BAR file with progress",
		chromedp.Navigate(srv.URL+"/bar-files"),
		chromedp.SetUploadFiles("#bar-file", []string{barPath}, chromedp.ByQuery),
		chromedp.Click("#bar-upload", chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery),
		chromedp.Location(&where))
	if !strings.HasSuffix(where, "/bar-files") {
		t.Fatalf("after the upload the page is at %s", where)
	}
	var marker int
	var endpoints string
	run(t, tab, "create a runtime and see it turn Ready",
		chromedp.Navigate(srv.URL+"/runtimes"),
		chromedp.SendKeys("#rt-name", "hello", chromedp.ByQuery),
		chromedp.Click("#bar-hello", chromedp.ByQuery),
		chromedp.Submit("#rt-name", chromedp.ByQuery),
		chromedp.WaitVisible(`[data-live="hello"]`, chromedp.ByQuery),
		// A reload would drop this; it must survive until Ready shows.
		chromedp.Evaluate(`window.sluiceNoReload = 7`, &marker),
		chromedp.WaitVisible(`[data-live="hello"] .phase-Ready`, chromedp.ByQuery),
		chromedp.WaitVisible(`#endpoints code`, chromedp.ByQuery),
		chromedp.Evaluate(`window.sluiceNoReload || 0`, &marker),
		chromedp.Text("#endpoints", &endpoints, chromedp.ByQuery))
	if marker != 7 {
		t.Fatalf("the page reloaded on its way to Ready")
	}
	m := regexp.MustCompile(`https?://\S+`).FindString(endpoints)
	if m == "" {
		t.Fatalf("no endpoint URL on the page: %q", endpoints)
	}
	resp, err := http.Get(strings.Replace(m, "{name}", "browser", 1))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Hello, browser!") {
		t.Fatalf("GET %s = %d %s", m, resp.StatusCode, body)
	}
	// Trace it: start a user trace, send a message, download the trace
	// as the browser would (with its session cookie), stop it.
	run(t, tab, "start a trace",
		chromedp.Click("#start-trace", chromedp.ByQuery),
		chromedp.WaitVisible("#download-hello-user", chromedp.ByQuery))
	if resp, err := http.Get(strings.Replace(m, "{name}", "traced", 1)); err == nil {
		resp.Body.Close()
	}
	var cookies []*network.Cookie
	run(t, tab, "read the session cookie", chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().WithURLs([]string{srv.URL}).Do(ctx)
		return err
	}))
	req, _ := http.NewRequest("GET", srv.URL+"/traces/hello-user/download", nil)
	for _, ck := range cookies {
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	zipped, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.HasPrefix(zipped, []byte("PK")) {
		t.Fatalf("trace download = %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(zipped))
	}
	run(t, tab, "stop the trace",
		chromedp.Click(`button[aria-label="Stop trace hello-user"]`, chromedp.ByQuery),
		chromedp.WaitNotPresent("#download-hello-user", chromedp.ByQuery))
	if code, _ := admin.Do("GET", "/api/v1/traces/hello-user", nil); code != 404 {
		t.Fatalf("trace after stop in the browser = %d", code)
	}
	run(t, tab, "delete the runtime",
		chromedp.Click(`button.danger`, chromedp.ByQuery),
		// The list page, empty again, after the redirect.
		chromedp.WaitVisible("#no-runtimes", chromedp.ByQuery))
	if code, _ := admin.Do("GET", "/api/v1/integration-runtimes/hello", nil); code != 404 {
		t.Fatalf("runtime after delete in the browser = %d", code)
	}
}

// TestBrowserPublishedAPIs publishes an API, creates a plan, subscribes
// an app and unsubscribes it through the pages in Chromium, and checks a
// viewer's pages have no write controls.
func TestBrowserPublishedAPIs(t *testing.T) {
	exe := chromium(t)
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none"}})
	c := srv.Creds
	admin := srv.Login(t, c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)
	data, _, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", "hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	barPath := filepath.Join(t.TempDir(), "hello.bar")
	if err := os.WriteFile(barPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tab := newTab(t, exe, "published")
	run(t, tab, "log in", loginActions(srv.URL, c.InstanceID, c.Username, c.Password)...)
	run(t, tab, "upload a BAR file",
		chromedp.Navigate(srv.URL+"/bar-files"),
		chromedp.SetUploadFiles("#bar-file", []string{barPath}, chromedp.ByQuery),
		chromedp.Submit("#bar-file", chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))

	var where, text string
	run(t, tab, "publish an API",
		chromedp.Navigate(srv.URL+"/apis"),
		chromedp.WaitVisible("#no-apis", chromedp.ByQuery),
		chromedp.SendKeys("#api-name", "hello", chromedp.ByQuery),
		chromedp.SendKeys("#api-version", "1.0.0", chromedp.ByQuery),
		chromedp.SendKeys("#api-base", "/hello", chromedp.ByQuery),
		chromedp.SetValue("#api-bar", "hello", chromedp.ByQuery),
		chromedp.Submit("#api-name", chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery),
		chromedp.Location(&where),
		chromedp.Text("main", &text, chromedp.ByQuery))
	if !strings.HasSuffix(where, "/apis/hello") || !strings.Contains(text, "GET /hello/{name}") {
		t.Fatalf("after publishing, the page is %s:\n%s", where, text)
	}
	var href string
	run(t, tab, "find the OpenAPI download", chromedp.AttributeValue("#api-document", "href", &href, nil, chromedp.ByQuery))
	if href != "/apis/hello/openapi" {
		t.Errorf("the document link is %q", href)
	}

	// A plan with a bad rate limit is refused on the page, the ticked API kept.
	var ticked bool
	run(t, tab, "create a plan with a bad rate limit",
		chromedp.Navigate(srv.URL+"/plans"),
		chromedp.SendKeys("#plan-name", "gold", chromedp.ByQuery),
		chromedp.Click("#plan-api-hello", chromedp.ByQuery),
		chromedp.SendKeys("#plan-rate", "lots", chromedp.ByQuery),
		chromedp.Submit("#plan-name", chromedp.ByQuery),
		chromedp.WaitVisible("#plan-error", chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("plan-api-hello").checked`, &ticked))
	if !ticked {
		t.Errorf("the refused form lost the ticked API")
	}
	run(t, tab, "create the plan",
		chromedp.SetValue("#plan-rate", "100/1m", chromedp.ByQuery),
		chromedp.SetValue("#plan-auth", "client-id", chromedp.ByQuery),
		chromedp.Submit("#plan-name", chromedp.ByQuery),
		chromedp.WaitVisible("#subscribe", chromedp.ByQuery),
		chromedp.Text("#plan-auth", &text, chromedp.ByQuery))
	if text != "client-id" {
		t.Errorf("the plan's page says auth %q", text)
	}

	// Edit the API and the plan through their edit pages: a refused change
	// keeps what was typed, a saved one is what the API serves.
	var version string
	run(t, tab, "edit the API with a bad base path, then a good version",
		chromedp.Navigate(srv.URL+"/apis/hello"),
		chromedp.Click("#api-edit", chromedp.ByQuery),
		chromedp.WaitVisible("#api-save", chromedp.ByQuery),
		chromedp.SetValue("#api-base", "/bye", chromedp.ByQuery),
		chromedp.SetValue("#api-version", "1.1.0", chromedp.ByQuery),
		chromedp.Click("#api-save", chromedp.ByQuery),
		chromedp.WaitVisible("#api-error", chromedp.ByQuery),
		chromedp.Value("#api-version", &version, chromedp.ByQuery))
	if version != "1.1.0" {
		t.Errorf("the refused edit lost the typed version: %q", version)
	}
	run(t, tab, "save the API",
		chromedp.SetValue("#api-base", "/hello", chromedp.ByQuery),
		chromedp.Click("#api-save", chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery),
		chromedp.Text("main", &text, chromedp.ByQuery))
	if !strings.Contains(text, "version 1.1.0") {
		t.Errorf("the API page after the edit:\n%s", text)
	}
	run(t, tab, "edit the plan to oauth",
		chromedp.Navigate(srv.URL+"/plans/gold"),
		chromedp.Click("#plan-edit", chromedp.ByQuery),
		chromedp.WaitVisible("#plan-save", chromedp.ByQuery),
		chromedp.SetValue("#plan-auth", "oauth", chromedp.ByQuery),
		chromedp.Click("#plan-save", chromedp.ByQuery),
		chromedp.WaitVisible("#subscribe", chromedp.ByQuery),
		chromedp.Text("#plan-auth", &text, chromedp.ByQuery))
	if text != "oauth" {
		t.Errorf("the plan's page after the edit says auth %q", text)
	}
	if code, body := admin.Do("GET", "/api/v1/apis/hello", nil); code != 200 || !strings.Contains(string(body), `"version":"1.1.0"`) {
		t.Errorf("the API after the browser's edit: %d %s", code, body)
	}

	for _, call := range []struct{ path, name string }{{"/api/v1/catalogs/sandbox/consumer-orgs", "acme"}, {"/api/v1/catalogs/sandbox/consumer-orgs/acme/apps", "shop"}} {
		if code, body := admin.Do("POST", call.path, map[string]any{"metadata": map[string]any{"name": call.name}}); code != 201 {
			t.Fatalf("POST %s: %d %s", call.path, code, body)
		}
	}
	// (An <option> has no box of its own: wait for it to be in the page.)
	run(t, tab, "subscribe the app",
		chromedp.Reload(),
		chromedp.WaitReady(`#sub-app option[value="sandbox/acme/shop"]`, chromedp.ByQuery),
		chromedp.SetValue("#sub-app", "sandbox/acme/shop", chromedp.ByQuery),
		chromedp.Click("#subscribe", chromedp.ByQuery),
		chromedp.WaitVisible("#subscriptions .state-active", chromedp.ByQuery),
		chromedp.Text("#subscriptions", &text, chromedp.ByQuery))
	if !strings.Contains(text, "shop-gold") || !strings.Contains(text, "sandbox/acme/shop") {
		t.Fatalf("subscriptions table: %s", text)
	}
	if code, body := admin.Do("GET", "/api/v1/subscriptions/shop-gold", nil); code != 200 || !strings.Contains(string(body), `"active"`) {
		t.Fatalf("the API does not see the subscription: %d %s", code, body)
	}

	// A viewer, in a browser of their own, sees no write controls.
	const pw = "viewer-password-123"
	if code, body := admin.Do("PUT", "/api/v1/users/vera", map[string]any{"metadata": map[string]any{"name": "vera"},
		"spec": map[string]any{"role": "viewer", "password": pw}}); code != 201 {
		t.Fatalf("create viewer = %d %s", code, body)
	}
	viewer := newTab(t, exe, "published-viewer")
	run(t, viewer, "viewer logs in", loginActions(srv.URL, c.InstanceID, "vera", pw)...)
	for _, page := range []string{"/apis", "/apis/hello", "/plans", "/plans/gold", "/subscriptions"} {
		var forms int
		run(t, viewer, "viewer looks at "+page,
			chromedp.Navigate(srv.URL+page),
			chromedp.WaitVisible("main h1", chromedp.ByQuery),
			chromedp.Evaluate(`document.querySelectorAll("main form[method=post], main button").length`, &forms))
		if forms != 0 {
			t.Errorf("the viewer's %s page has %d forms or buttons, want none", page, forms)
		}
	}

	run(t, tab, "unsubscribe",
		chromedp.Click(`button[aria-label="Unsubscribe shop-gold"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#no-subscriptions", chromedp.ByQuery))
	if code, _ := admin.Do("GET", "/api/v1/subscriptions/shop-gold", nil); code != 404 {
		t.Errorf("the subscription after unsubscribing in the browser: %d", code)
	}
	run(t, tab, "delete the plan and the API",
		chromedp.Click(`button[aria-label="Delete plan gold"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#no-plans", chromedp.ByQuery),
		chromedp.Navigate(srv.URL+"/apis/hello"),
		chromedp.Click(`button[aria-label="Delete API hello"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#no-apis", chromedp.ByQuery))
	if code, _ := admin.Do("GET", "/api/v1/apis/hello", nil); code != 404 {
		t.Errorf("the API after deleting it in the browser: %d", code)
	}
}

// TestBrowserRuntimeUnderLoad opens a runtime's page in Chromium while
// the runtime serves a steady load: its charts load as images under the
// dashboard's CSP, and the status stream makes the page reload them (and
// the rate beside them) without reloading the page. The screenshot goes
// to $SLUICE_SCREENSHOTS when set.
func TestBrowserRuntimeUnderLoad(t *testing.T) {
	exe := chromium(t)
	srv := servertest.Start(t, servertest.Options{Args: []string{"--metrics-sample-interval", "500ms"}})
	c := srv.Creds
	admin := srv.Login(t, c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)
	b := newBrowser(t, srv.URL)
	b.login(c.InstanceID, c.Username, c.Password)
	endpoint := deployHello(t, srv, b, admin)

	// The load: four callers until the test ends, each at most one call
	// every 2 ms so the machine's other tests keep their share.
	stop := make(chan struct{})
	done := make(chan struct{}, 4)
	defer func() {
		close(stop)
		for i := 0; i < 4; i++ {
			<-done
		}
	}()
	for i := 0; i < 4; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			pace := time.NewTicker(2 * time.Millisecond)
			defer pace.Stop()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-pace.C:
				}
				u := strings.Replace(endpoint, "{name}", fmt.Sprint("load-", n), 1)
				if resp, err := http.Get(u); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}

	tab := newTab(t, exe, "load")
	run(t, tab, "log in", loginActions(srv.URL, c.InstanceID, c.Username, c.Password)...)
	var first string
	var marker int
	run(t, tab, "open the runtime's page",
		chromedp.Navigate(srv.URL+"/runtimes/hello"),
		chromedp.WaitVisible(`img[data-chart]`, chromedp.ByQuery),
		chromedp.Evaluate(`window.sluiceNoReload = 7`, &marker),
		chromedp.AttributeValue(`img[data-chart]`, "src", &first, nil, chromedp.ByQuery))
	// A new sample reloads the images in place; the rate beside them is
	// the load's; every chart image has loaded (the CSP let it).
	run(t, tab, "see the charts follow the load",
		chromedp.Poll(`document.querySelector("img[data-chart]").getAttribute("src") !== `+strconvQuote(first), nil),
		chromedp.Poll(`/[1-9][0-9.]*k? req\/s/.test(document.querySelector('[data-field="charts-now"]').textContent)`, nil),
		chromedp.Poll(`Array.prototype.every.call(document.querySelectorAll("img[data-chart]"), function (i) { return i.complete && i.naturalWidth > 0; })`, nil),
		chromedp.Evaluate(`window.sluiceNoReload || 0`, &marker))
	if marker != 7 {
		t.Fatalf("the page reloaded instead of redrawing its charts")
	}
	var now string
	var png []byte
	run(t, tab, "screenshot the runtime under load",
		chromedp.Text(`[data-field="charts-now"]`, &now, chromedp.ByQuery),
		chromedp.FullScreenshot(&png, 100))
	if len(png) == 0 {
		t.Fatal("empty screenshot")
	}
	t.Logf("runtime under load: %s", now)
	if dir := os.Getenv("SLUICE_SCREENSHOTS"); dir != "" {
		path := filepath.Join(dir, "runtime-under-load.png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }
