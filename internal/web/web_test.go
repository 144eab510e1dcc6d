package web_test

import (
	"bufio"
	"bytes"
	"context"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// browser is a cookie-holding HTTP client that does not follow redirects,
// so tests see each answer the dashboard gives.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	code     int
	location string
	body     string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{code: resp.StatusCode, location: resp.Header.Get("Location"), body: string(body)}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// upload posts a multipart form with one file field named "file".
func (b *browser) upload(path string, fields map[string]string, filename string, data []byte) page {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", filename)
	_, _ = fw.Write(data)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", b.base+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page's forms.
func csrf(t *testing.T, p page) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no csrf token in page (%d):\n%s", p.code, p.body)
	}
	return html.UnescapeString(m[1])
}

// shown reads a value from the show-once page by its input id.
func shown(t *testing.T, p page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + id + `" value="([^"]+)"`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no %s on the page (%d):\n%s", id, p.code, p.body)
	}
	return html.UnescapeString(m[1])
}

func (b *browser) login(instance, user, password string) page {
	b.t.Helper()
	lp := b.get("/login")
	if lp.code != 200 {
		b.t.Fatalf("GET /login = %d", lp.code)
	}
	return b.post("/login", url.Values{"csrf": {csrf(b.t, lp)}, "instance": {instance}, "username": {user}, "password": {password}})
}

// viewerBrowser creates the viewer vera through the API and logs her in
// in a browser of her own.
func viewerBrowser(t *testing.T, srv *servertest.Server, admin *servertest.Client) *browser {
	t.Helper()
	const pw = "a-long-viewer-password"
	if code, body := admin.Do("POST", "/api/v1/users", map[string]any{"metadata": map[string]any{"name": "vera"},
		"spec": map[string]any{"role": "viewer", "password": pw}}); code != 201 {
		t.Fatalf("create viewer: %d %s", code, body)
	}
	v := newBrowser(t, srv.URL)
	if p := v.login(srv.Creds.InstanceID, "vera", pw); p.code != http.StatusSeeOther {
		t.Fatalf("viewer login = %d", p.code)
	}
	return v
}

func TestDashboard(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none"}})
	c := srv.Creds
	admin := srv.Login(t, c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)

	t.Run("login", func(t *testing.T) {
		b := newBrowser(t, srv.URL)
		if p := b.get("/runtimes"); p.code != http.StatusSeeOther || !strings.HasPrefix(p.location, "/login") {
			t.Fatalf("logged-out GET /runtimes = %d %q, want a redirect to /login", p.code, p.location)
		}
		bad := b.login(c.InstanceID, c.Username, c.Password+"x")
		if bad.code != http.StatusUnauthorized || !strings.Contains(bad.body, "is not right") {
			t.Fatalf("bad password: %d\n%s", bad.code, bad.body)
		}
		if !strings.Contains(bad.body, `value="`+c.Username+`"`) {
			t.Errorf("the failed login form did not keep the user name")
		}
		if strings.Contains(bad.body, c.Password) {
			t.Errorf("the login page shows the password")
		}
		if p := b.login("no-such-instance", c.Username, c.Password); p.code != http.StatusUnauthorized {
			t.Errorf("unknown instance: %d", p.code)
		}
		good := b.login(c.InstanceID, c.Username, c.Password)
		if good.code != http.StatusSeeOther || good.location != "/runtimes" {
			t.Fatalf("good login = %d %q\n%s", good.code, good.location, good.body)
		}
		p := b.get("/runtimes")
		if p.code != 200 || !strings.Contains(p.body, "Integration runtimes") || !strings.Contains(p.body, "Log out") {
			t.Fatalf("GET /runtimes after login = %d\n%s", p.code, p.body)
		}
		// Logging out ends the session on the server, not only in the
		// browser, and with it an open status stream.
		req, _ := http.NewRequest("GET", srv.URL+"/runtimes/events", nil)
		stream, err := b.c.Do(req)
		if err != nil || stream.StatusCode != 200 {
			t.Fatalf("status stream: %v %v", err, stream)
		}
		if out := b.post("/logout", url.Values{"csrf": {csrf(t, p)}}); out.code != http.StatusSeeOther {
			t.Fatalf("logout = %d", out.code)
		}
		if _, err := io.Copy(io.Discard, stream.Body); err != nil {
			t.Fatalf("status stream after logout: %v", err)
		}
		stream.Body.Close()
		if p := b.get("/runtimes"); p.code != http.StatusSeeOther {
			t.Errorf("GET /runtimes after logout = %d, want a redirect to /login", p.code)
		}
		// next= is a path of this site only: "/\t/evil.example" (what
		// ?next=/%09/evil.example decodes to) would reach //evil.example
		// once a browser strips the tab.
		for _, next := range []string{"/\t/evil.example", "/%5C/evil.example", "//evil.example"} {
			b3 := newBrowser(t, srv.URL)
			lp := b3.get("/login?next=" + url.QueryEscape(next))
			p := b3.post("/login", url.Values{"csrf": {csrf(t, lp)}, "instance": {c.InstanceID}, "username": {c.Username}, "password": {c.Password}, "next": {next}})
			if p.code != http.StatusSeeOther || p.location != "/runtimes" {
				t.Errorf("login with next=%q = %d %q, want a redirect to /runtimes", next, p.code, p.location)
			}
		}
		// A login form whose token does not match the browser's cookie is refused.
		b2 := newBrowser(t, srv.URL)
		b2.get("/login")
		if p := b2.post("/login", url.Values{"csrf": {"forged"}, "instance": {c.InstanceID}, "username": {c.Username}, "password": {c.Password}}); p.code != http.StatusForbidden {
			t.Errorf("login with a forged csrf token = %d, want 403", p.code)
		}
	})

	b := newBrowser(t, srv.URL)
	if p := b.login(c.InstanceID, c.Username, c.Password); p.code != http.StatusSeeOther {
		t.Fatalf("login = %d\n%s", p.code, p.body)
	}

	t.Run("csrf", func(t *testing.T) {
		p := b.upload("/configurations", map[string]string{"name": "nocsrf", "type": "setdbparms"}, "p.txt", []byte("db1 alice pw1\n"))
		if p.code != http.StatusForbidden || !strings.Contains(p.body, "CSRF") {
			t.Fatalf("POST without csrf = %d\n%s", p.code, p.body)
		}
		p = b.post("/settings/api-keys", url.Values{"csrf": {"wrong"}, "name": {"nocsrf"}})
		if p.code != http.StatusForbidden {
			t.Fatalf("POST with a wrong csrf = %d", p.code)
		}
		if code, _ := admin.Do("GET", "/api/v1/configurations/nocsrf", nil); code != 404 {
			t.Errorf("the refused form created the configuration: GET = %d", code)
		}
	})

	const canary = "canary-db-password-7f3a"
	t.Run("configuration", func(t *testing.T) {
		list := b.get("/configurations")
		tok := csrf(t, list)
		if !strings.Contains(list.body, `<option value="setdbparms"`) {
			t.Fatalf("the type list lacks setdbparms:\n%s", list.body)
		}
		// A bad type: refused in words next to the form, which keeps what was typed.
		bad := b.upload("/configurations", map[string]string{"csrf": tok, "name": "db-creds", "type": "nosuchtype", "description": "kept text"}, "p.txt", []byte("db1 alice "+canary+"\n"))
		if bad.code != http.StatusBadRequest || !strings.Contains(bad.body, "not a configuration type") || !strings.Contains(bad.body, `value="kept text"`) {
			t.Fatalf("bad type = %d\n%s", bad.code, bad.body)
		}
		ok := b.upload("/configurations", map[string]string{"csrf": tok, "name": "db-creds", "type": "setdbparms", "description": "db"}, "p.txt", []byte("db1 alice "+canary+"\n"))
		if ok.code != http.StatusSeeOther {
			t.Fatalf("create = %d\n%s", ok.code, ok.body)
		}
		code, body := admin.Do("GET", "/api/v1/configurations/db-creds", nil)
		if code != 200 || !strings.Contains(string(body), `"setdbparms"`) {
			t.Fatalf("API GET after the form = %d %s", code, body)
		}
		list = b.get("/configurations")
		if !strings.Contains(list.body, "db-creds") || strings.Contains(list.body, canary) {
			t.Fatalf("list after create: listed=%v, shows data=%v", strings.Contains(list.body, "db-creds"), strings.Contains(list.body, canary))
		}
		if p := b.post("/configurations/db-creds/delete", url.Values{"csrf": {tok}}); p.code != http.StatusSeeOther {
			t.Fatalf("delete = %d\n%s", p.code, p.body)
		}
		if code, _ := admin.Do("GET", "/api/v1/configurations/db-creds", nil); code != 404 {
			t.Fatalf("API GET after the delete form = %d, want 404", code)
		}
		// The form's actions are audited as the logged-in user, as the API's are.
		_, audit := admin.Do("GET", "/api/v1/audit", nil)
		if !strings.Contains(string(audit), "configuration.delete") || !strings.Contains(string(audit), "user:"+c.Username) {
			t.Errorf("audit lacks the dashboard's configuration.delete by user:%s:\n%s", c.Username, audit)
		}
		if strings.Contains(string(audit), canary) {
			t.Errorf("the audit log holds the configuration's data")
		}
	})

	t.Run("api key and credential for the token exchange", func(t *testing.T) {
		tok := csrf(t, b.get("/settings/api-keys"))
		kp := b.post("/settings/api-keys", url.Values{"csrf": {tok}, "name": {"from-dashboard"}, "description": {"test"}})
		if kp.code != 200 {
			t.Fatalf("generate API key = %d\n%s", kp.code, kp.body)
		}
		key := shown(t, kp, "api-key")
		cp := b.post("/settings/credentials", url.Values{"csrf": {tok}, "name": {"from-dashboard"}})
		if cp.code != 200 {
			t.Fatalf("generate credential = %d\n%s", cp.code, cp.body)
		}
		id, sec := shown(t, cp, "client-id"), shown(t, cp, "client-secret")
		resp, body, err := servertest.Exchange(srv.URL, id, sec, c.InstanceID, key)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("exchange with the dashboard's key and credential: %v %v %s", err, resp, body)
		}
		// Listed afterwards, with the values nowhere on the page.
		keys := b.get("/settings/api-keys")
		if !strings.Contains(keys.body, "from-dashboard") || strings.Contains(keys.body, key) {
			t.Fatalf("API key list: listed=%v, shows value=%v", strings.Contains(keys.body, "from-dashboard"), strings.Contains(keys.body, key))
		}
		creds := b.get("/settings/credentials")
		if !strings.Contains(creds.body, id) || strings.Contains(creds.body, sec) {
			t.Fatalf("credential list: listed=%v, shows secret=%v", strings.Contains(creds.body, id), strings.Contains(creds.body, sec))
		}
		// Locking the key in the dashboard stops the exchange at once.
		keyID := shown(t, kp, "key-id")
		if !strings.Contains(keys.body, `action="/settings/api-keys/`+keyID+`/lock"`) {
			t.Fatalf("no lock button for the new key:\n%s", keys.body)
		}
		if p := b.post("/settings/api-keys/"+keyID+"/lock", url.Values{"csrf": {tok}}); p.code != http.StatusSeeOther {
			t.Fatalf("lock = %d\n%s", p.code, p.body)
		}
		if resp, _, _ := servertest.Exchange(srv.URL, id, sec, c.InstanceID, key); resp == nil || resp.StatusCode == 200 {
			t.Fatalf("a locked key still exchanges")
		}
	})

	t.Run("viewer", func(t *testing.T) {
		const pw = "viewer-password-123"
		if code, body := admin.Do("PUT", "/api/v1/users/vera", map[string]any{"metadata": map[string]any{"name": "vera"},
			"spec": map[string]any{"role": "viewer", "password": pw}}); code != 201 {
			t.Fatalf("create viewer = %d %s", code, body)
		}
		v := newBrowser(t, srv.URL)
		if p := v.login(c.InstanceID, "vera", pw); p.code != http.StatusSeeOther {
			t.Fatalf("viewer login = %d\n%s", p.code, p.body)
		}
		list := v.get("/configurations")
		if list.code != 200 || strings.Contains(list.body, "Create a configuration") {
			t.Fatalf("viewer's configurations page = %d, shows the create form = %v", list.code, strings.Contains(list.body, "Create a configuration"))
		}
		if strings.Contains(list.body, "Public API credentials") {
			t.Errorf("the viewer's navigation offers the admin-only credentials page")
		}
		tok := csrf(t, list)
		p := v.upload("/configurations", map[string]string{"csrf": tok, "name": "by-viewer", "type": "setdbparms"}, "p.txt", []byte("db1 a b\n"))
		if p.code != http.StatusForbidden {
			t.Fatalf("viewer's create = %d, want 403\n%s", p.code, p.body)
		}
		if code, _ := admin.Do("GET", "/api/v1/configurations/by-viewer", nil); code != 404 {
			t.Fatalf("the viewer's refused form created the configuration: %d", code)
		}
		if p := v.post("/settings/credentials", url.Values{"csrf": {tok}, "name": {"by-viewer"}}); p.code != http.StatusForbidden {
			t.Fatalf("viewer's credential = %d, want 403", p.code)
		}
		if p := v.post("/settings/api-keys", url.Values{"csrf": {tok}, "name": {"steal"}, "owner": {"user:" + c.Username}}); p.code != http.StatusForbidden {
			t.Errorf("viewer's key for the admin = %d, want 403", p.code)
		}
		if p := v.get("/settings/audit"); p.code != http.StatusForbidden {
			t.Errorf("viewer's audit page = %d, want 403", p.code)
		}
		// A role change made through the API applies to the open session at once.
		admin.Do("PUT", "/api/v1/users/vera", map[string]any{"metadata": map[string]any{"name": "vera"}, "spec": map[string]any{"role": "developer"}})
		if p := v.upload("/configurations", map[string]string{"csrf": tok, "name": "by-vera", "type": "setdbparms"}, "p.txt", []byte("db1 a b\n")); p.code != http.StatusSeeOther {
			t.Fatalf("promoted user's create = %d\n%s", p.code, p.body)
		}
	})

	t.Run("bar file and runtime", func(t *testing.T) {
		data, info, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", "hello"), nil)
		if err != nil {
			t.Fatal(err)
		}
		tok := csrf(t, b.get("/bar-files"))
		// Not a BAR: the problem is shown next to the form, which keeps the name.
		bad := b.upload("/bar-files", map[string]string{"csrf": tok, "name": "broken"}, "broken.bar", []byte("not a zip"))
		if bad.code != http.StatusBadRequest || !strings.Contains(bad.body, "not valid") || !strings.Contains(bad.body, `value="broken"`) {
			t.Fatalf("invalid BAR = %d\n%s", bad.code, bad.body)
		}
		if p := b.upload("/bar-files", map[string]string{"csrf": tok}, "hello.bar", data); p.code != http.StatusSeeOther {
			t.Fatalf("upload = %d\n%s", p.code, p.body)
		}
		list := b.get("/bar-files")
		if !strings.Contains(list.body, `/bar-files/hello/download`) || (len(info.Endpoints) > 0 && !strings.Contains(list.body, info.Endpoints[0].Path)) {
			t.Fatalf("BAR list lacks hello or its endpoints:\n%s", list.body)
		}
		if dl := b.get("/bar-files/hello/download"); dl.code != 200 || dl.body != string(data) {
			t.Fatalf("download = %d, %d bytes, want the %d uploaded", dl.code, len(dl.body), len(data))
		}
		// Created through the form: without a BAR file it is refused, the
		// form keeping the name; with one it is in the API.
		if p := b.post("/runtimes", url.Values{"csrf": {tok}, "name": {"hello"}, "replicas": {"1"}}); p.code != http.StatusBadRequest || !strings.Contains(p.body, `value="hello"`) {
			t.Fatalf("runtime without BAR = %d\n%s", p.code, p.body)
		}
		if p := b.post("/runtimes", url.Values{"csrf": {tok}, "name": {"hello"}, "replicas": {"1"}, "bar": {"hello"}}); p.code != http.StatusSeeOther {
			t.Fatalf("create runtime = %d\n%s", p.code, p.body)
		}
		if code, body := admin.Do("GET", "/api/v1/integration-runtimes/hello", nil); code != 200 || !strings.Contains(string(body), "/api/v1/bar-files/hello/content") {
			t.Fatalf("API GET of the runtime made in the form = %d %s", code, body)
		}
		// The live status stream names the new runtime.
		req, _ := http.NewRequest("GET", srv.URL+"/runtimes/events?name=hello", nil)
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
			t.Fatalf("GET /runtimes/events = %d %s", resp.StatusCode, ct)
		}
		sc := bufio.NewScanner(resp.Body)
		var event string
		for sc.Scan() && event == "" {
			if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"name":"hello"`) {
				event = sc.Text()
			}
		}
		resp.Body.Close()
		if !strings.Contains(event, `"phase":`) || !strings.Contains(event, `"wanted":1`) {
			t.Fatalf("first event of the stream: %q", event)
		}
		// Unticking every BAR file is refused by the service, in words, on the page.
		if p := b.post("/runtimes/hello/spec", url.Values{"csrf": {tok}}); p.code != http.StatusBadRequest || !strings.Contains(p.body, "barURL is empty") {
			t.Fatalf("spec without BAR = %d\n%s", p.code, p.body)
		}
		// A BAR file a runtime uses is not deleted; the page says why.
		if p := b.post("/bar-files/hello/delete", url.Values{"csrf": {tok}}); p.code != http.StatusConflict || !strings.Contains(p.body, "hello") {
			t.Fatalf("delete of a BAR in use = %d\n%s", p.code, p.body)
		}
		if p := b.get("/runtimes"); !strings.Contains(p.body, `href="/runtimes/hello"`) {
			t.Fatalf("runtime list lacks hello:\n%s", p.body)
		}
		rp := b.get("/runtimes/hello")
		if rp.code != 200 || !strings.Contains(rp.body, `name="replicas"`) {
			t.Fatalf("runtime page = %d\n%s", rp.code, rp.body)
		}
		if p := b.post("/runtimes/hello/replicas", url.Values{"csrf": {tok}, "replicas": {"99"}}); p.code != http.StatusBadRequest || !strings.Contains(p.body, `value="99"`) {
			t.Fatalf("replicas 99 = %d\n%s", p.code, p.body)
		}
		if p := b.post("/runtimes/hello/replicas", url.Values{"csrf": {tok}, "replicas": {"0"}}); p.code != http.StatusSeeOther {
			t.Fatalf("replicas 0 = %d\n%s", p.code, p.body)
		}
		if _, body := admin.Do("GET", "/api/v1/integration-runtimes/hello", nil); !strings.Contains(string(body), `"replicas":0`) {
			t.Fatalf("API after setting replicas to 0: %s", body)
		}
		if p := b.post("/runtimes/hello/delete", url.Values{"csrf": {tok}}); p.code != http.StatusSeeOther {
			t.Fatalf("delete runtime = %d\n%s", p.code, p.body)
		}
		if code, _ := admin.Do("GET", "/api/v1/integration-runtimes/hello", nil); code != 404 {
			t.Fatalf("runtime after delete = %d", code)
		}
		if p := b.post("/bar-files/hello/delete", url.Values{"csrf": {tok}}); p.code != http.StatusSeeOther {
			t.Fatalf("delete BAR = %d\n%s", p.code, p.body)
		}
		if code, _ := admin.Do("GET", "/api/v1/bar-files/hello", nil); code != 404 {
			t.Fatalf("BAR after delete = %d", code)
		}
	})

	t.Run("failed logins are limited", func(t *testing.T) {
		const pw = "target-password-123"
		if code, body := admin.Do("PUT", "/api/v1/users/target", map[string]any{"metadata": map[string]any{"name": "target"},
			"spec": map[string]any{"role": "viewer", "password": pw}}); code != 201 {
			t.Fatalf("create user = %d %s", code, body)
		}
		g := newBrowser(t, srv.URL)
		for i := 0; i < 5; i++ {
			if p := g.login(c.InstanceID, "target", "guess-"+strconv.Itoa(i)); p.code != http.StatusUnauthorized {
				t.Fatalf("guess %d = %d", i, p.code)
			}
		}
		// Now even the right password is refused, in words, for a while.
		p := g.login(c.InstanceID, "target", pw)
		if p.code != http.StatusTooManyRequests || !strings.Contains(p.body, "too many failed logins") {
			t.Fatalf("login after 5 failures = %d\n%s", p.code, p.body)
		}
		// Other users are not locked out by it.
		if p := newBrowser(t, srv.URL).login(c.InstanceID, c.Username, c.Password); p.code != http.StatusSeeOther {
			t.Fatalf("admin login while target is throttled = %d", p.code)
		}
	})

	t.Run("users, audit and api pages", func(t *testing.T) {
		page := b.get("/settings/identities")
		tok := csrf(t, page)
		short := b.post("/settings/identities/users", url.Values{"csrf": {tok}, "name": {"dora"}, "role": {"developer"}, "password": {"short"}})
		if short.code != http.StatusBadRequest || !strings.Contains(short.body, "shorter than 12") || !strings.Contains(short.body, `value="dora"`) {
			t.Fatalf("short password = %d\n%s", short.code, short.body)
		}
		if strings.Contains(short.body, `value="short"`) {
			t.Errorf("the failed form echoes the password")
		}
		if p := b.post("/settings/identities/users", url.Values{"csrf": {tok}, "name": {"dora"}, "role": {"developer"}, "password": {"dora-password-123"}}); p.code != http.StatusSeeOther {
			t.Fatalf("create user = %d\n%s", p.code, p.body)
		}
		if code, body := admin.Do("GET", "/api/v1/users/dora", nil); code != 200 || !strings.Contains(string(body), `"developer"`) {
			t.Fatalf("API GET of the user = %d %s", code, body)
		}
		if p := b.post("/settings/identities/users/dora/role", url.Values{"csrf": {tok}, "role": {"viewer"}}); p.code != http.StatusSeeOther {
			t.Fatalf("set role = %d\n%s", p.code, p.body)
		}
		if _, body := admin.Do("GET", "/api/v1/users/dora", nil); !strings.Contains(string(body), `"viewer"`) {
			t.Fatalf("role after the form: %s", body)
		}
		if p := b.post("/settings/identities/service-ids", url.Values{"csrf": {tok}, "name": {"ci"}, "role": {"developer"}}); p.code != http.StatusSeeOther {
			t.Fatalf("create service ID = %d\n%s", p.code, p.body)
		}
		if code, _ := admin.Do("GET", "/api/v1/service-ids/ci", nil); code != 200 {
			t.Fatalf("API GET of the service ID = %d", code)
		}
		// An admin makes a key for the service ID; it exchanges as the service ID.
		kp := b.post("/settings/api-keys", url.Values{"csrf": {tok}, "name": {"ci-key"}, "owner": {"serviceId:ci"}})
		if kp.code != 200 {
			t.Fatalf("key for the service ID = %d\n%s", kp.code, kp.body)
		}
		ci := srv.Login(t, c.ClientID, c.ClientSecret, c.InstanceID, shown(t, kp, "api-key"))
		if _, who := ci.Do("GET", "/api/v1/whoami", nil); !strings.Contains(string(who), `"ci"`) {
			t.Fatalf("whoami with the service ID's key: %s", who)
		}
		if p := b.post("/settings/identities/users/dora/password", url.Values{"csrf": {tok}, "password": {"dora-password-456"}}); p.code != http.StatusSeeOther {
			t.Fatalf("set password = %d\n%s", p.code, p.body)
		}
		dora := newBrowser(t, srv.URL)
		if p := dora.login(c.InstanceID, "dora", "dora-password-123"); p.code != http.StatusUnauthorized {
			t.Fatalf("dora's login with the old password = %d", p.code)
		}
		if p := dora.login(c.InstanceID, "dora", "dora-password-456"); p.code != http.StatusSeeOther {
			t.Fatalf("dora's login = %d", p.code)
		}
		if p := b.post("/settings/identities/users/dora/delete", url.Values{"csrf": {tok}}); p.code != http.StatusSeeOther {
			t.Fatalf("delete user = %d\n%s", p.code, p.body)
		}
		if code, _ := admin.Do("GET", "/api/v1/users/dora", nil); code != 404 {
			t.Fatalf("user after delete = %d", code)
		}
		// Her open session ends with her.
		if p := dora.get("/runtimes"); p.code != http.StatusUnauthorized || !strings.Contains(p.body, "no longer exists") {
			t.Fatalf("deleted user's session = %d\n%s", p.code, p.body)
		}
		audit := b.get("/settings/audit?action=user.delete")
		if audit.code != 200 || !strings.Contains(audit.body, "user/dora") || strings.Contains(audit.body, "configuration.delete") {
			t.Fatalf("filtered audit page = %d\n%s", audit.code, audit.body)
		}
		if p := b.get("/settings/audit?since=yesterday"); p.code != http.StatusBadRequest || !strings.Contains(p.body, "since must be a date") {
			t.Fatalf("bad since = %d", p.code)
		}
		if strings.Contains(b.get("/settings/audit").body, "dora-password-123") {
			t.Errorf("the audit page shows a password")
		}
		if p := b.get("/api-spec"); p.code != 200 || !strings.Contains(p.body, "/api/v1/tokens") {
			t.Fatalf("API page = %d", p.code)
		}
	})

	t.Run("api paths unchanged", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/api/v1/nope")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("unknown API path = %d %s, want a JSON 404", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
}
