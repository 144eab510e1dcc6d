package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// page is one page of a list answer, whatever the list's key.
type page struct {
	items    []json.RawMessage
	cont     string
	keys     []string
	rawBytes []byte
}

func getPage(t *testing.T, c caller, path, key string) page {
	t.Helper()
	r := c.call("GET", path, nil)
	if r.code != 200 {
		t.Fatalf("GET %s: %d %s", path, r.code, r.body)
	}
	var body map[string]json.RawMessage
	r.json(t, &body)
	pg := page{rawBytes: r.body}
	for k := range body {
		pg.keys = append(pg.keys, k)
	}
	if err := json.Unmarshal(body[key], &pg.items); err != nil || pg.items == nil {
		t.Fatalf("GET %s: no %s list in %s", path, key, r.body)
	}
	if m, ok := body["metadata"]; ok {
		var md struct{ Continue string }
		if json.Unmarshal(m, &md) != nil || md.Continue == "" {
			t.Fatalf("GET %s: metadata without continue: %s", path, m)
		}
		pg.cont = md.Continue
	}
	return pg
}

func nameOf(t *testing.T, raw json.RawMessage) string {
	var o struct{ Metadata struct{ Name, ID string } }
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	if o.Metadata.Name == "" {
		return o.Metadata.ID
	}
	return o.Metadata.Name
}

// putConfigs stores configurations cfg<from>… straight in the store, in
// one transaction (many through the API would take a while).
func (e *env) putConfigs(from, to int) {
	e.t.Helper()
	var names []string
	for i := from; i < to; i++ {
		names = append(names, fmt.Sprintf("cfg%05d", i))
	}
	e.putConfigNames(names...)
}

func (e *env) putConfigNames(names ...string) {
	e.t.Helper()
	ctx := context.Background()
	err := e.st.Locked(ctx, e.creds.InstanceID, func(ctx context.Context) error {
		for _, name := range names {
			c := store.Configuration{InstanceID: e.creds.InstanceID, Name: name, Type: "generic",
				Description: "a configuration of the paging tests", SealedData: []byte("sealed"), UpdatedAt: e.clock.Now(), UpdatedBy: "test"}
			if _, err := e.st.PutConfiguration(ctx, c, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// Every list pages with ?limit and ?continue, keyset-based: objects
// created and deleted between pages never make one that existed
// throughout appear twice or not at all, and without ?limit the list is
// whole, in exactly the shape it had before paging existed.
func TestListsPageWithContinueTokens(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) { testListsPage(t, kind) })
	}
}

func testListsPage(t *testing.T, kind string) {
	e := newEnv(t, envOpts{storeKind: kind})
	admin := e.admin()
	e.putConfigs(0, 40)
	for i := range 9 {
		if r := admin.call("PUT", fmt.Sprintf("/api/v1/service-ids/s%d", i), obj(fmt.Sprintf("s%d", i), map[string]any{"role": "viewer"})); r.code != 201 {
			t.Fatalf("create s%d: %d %s", i, r.code, r.body)
		}
		admin.createKey(fmt.Sprintf("k%d", i), "serviceId", fmt.Sprintf("s%d", i), nil)
	}

	for _, l := range []struct{ path, key string }{
		{"/api/v1/configurations", "configurations"},
		{"/api/v1/service-ids", "serviceIds"},
		{"/api/v1/api-keys", "apiKeys"},
		{"/api/v1/users", "users"},
		{"/api/v1/credentials", "credentials"},
		{"/api/v1/bar-files", "barFiles"},
		{"/api/v1/integration-runtimes", "integrationRuntimes"},
	} {
		whole := getPage(t, admin, l.path, l.key)
		if len(whole.keys) != 1 || whole.cont != "" {
			t.Errorf("%s without limit answers %v, want only %s", l.path, whole.keys, l.key)
		}
		// The pages put together are the whole list, byte for byte.
		var items []string
		cont, pages := "", 0
		for {
			path := l.path + "?limit=4"
			if cont != "" {
				path += "&continue=" + url.QueryEscape(cont)
			}
			pg := getPage(t, admin, path, l.key)
			pages++
			if len(pg.items) > 4 || (pg.cont != "" && len(pg.items) != 4) {
				t.Fatalf("%s page %d: %d items, continue %q", l.path, pages, len(pg.items), pg.cont)
			}
			for _, it := range pg.items {
				items = append(items, string(it))
			}
			if cont = pg.cont; cont == "" {
				break
			}
		}
		if want := `{"` + l.key + `":[` + strings.Join(items, ",") + "]}\n"; string(whole.rawBytes) != want {
			t.Errorf("%s: the whole list is not its pages put together:\n%s\n%s", l.path, whole.rawBytes, want)
		}
		if want := max(1, (len(items)+3)/4); pages != want && !(len(items)%4 == 0 && pages == want+1) {
			t.Errorf("%s: %d pages for %d items", l.path, pages, len(items))
		}
	}

	// Inserts and deletes between pages, on both sides of the position.
	seen := map[string]int{}
	gone := map[string]bool{}
	cont := ""
	for i := 0; ; i++ {
		path := "/api/v1/configurations?limit=6"
		if cont != "" {
			path += "&continue=" + url.QueryEscape(cont)
		}
		pg := getPage(t, admin, path, "configurations")
		for _, it := range pg.items {
			seen[nameOf(t, it)]++
		}
		if cont = pg.cont; cont == "" {
			break
		}
		for _, n := range []string{fmt.Sprintf("cfg%05d", i), fmt.Sprintf("cfg%05d", 39-i)} {
			if r := admin.call("DELETE", "/api/v1/configurations/"+n, nil); r.code == 204 {
				gone[n] = true
			}
		}
		e.putConfigNames(fmt.Sprintf("cfg%05d", 100+i), fmt.Sprintf("a%d", i))
	}
	for n, c := range seen {
		if c != 1 {
			t.Errorf("%s seen %d times", n, c)
		}
	}
	for i := range 40 {
		if n := fmt.Sprintf("cfg%05d", i); !gone[n] && seen[n] != 1 {
			t.Errorf("%s existed throughout, seen %d times", n, seen[n])
		}
	}
}

// Bad paging input is a 400 naming the parameter: a limit out of range or
// not a number, a token that does not decode, one of another list, of
// another filter of the same list, or of another instance.
func TestListPagingBadInput(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	e.putConfigs(0, 5)
	for i := range 3 {
		admin.call("PUT", fmt.Sprintf("/api/v1/service-ids/s%d", i), obj(fmt.Sprintf("s%d", i), map[string]any{"role": "viewer"}))
	}
	cfgTok := getPage(t, admin, "/api/v1/configurations?limit=2", "configurations").cont
	sidTok := getPage(t, admin, "/api/v1/service-ids?limit=1", "serviceIds").cont
	if cfgTok == "" || sidTok == "" {
		t.Fatal("no continue tokens")
	}
	other, err := e.svc.CreateInstance(context.Background(), "team-b")
	if err != nil {
		t.Fatal(err)
	}
	r := e.exchange(other.ClientID, other.ClientSecret, other.InstanceID, other.APIKey)
	var tok iam.TokenResponse
	r.json(t, &tok)
	b := caller{e, tok.AccessToken, other.ClientID}
	q := url.QueryEscape
	for _, c := range []struct {
		who   caller
		path  string
		param string
	}{
		{admin, "/api/v1/configurations?limit=0", "limit"},
		{admin, "/api/v1/configurations?limit=1001", "limit"},
		{admin, "/api/v1/configurations?limit=ten", "limit"},
		{admin, "/api/v1/configurations?limit=2&limit=3", "limit"},
		{admin, "/api/v1/configurations?continue=", "continue"},
		{admin, "/api/v1/configurations?continue=not-a-token", "continue"},
		{admin, "/api/v1/configurations?continue=" + strings.Repeat("A", 2000), "continue"},
		{admin, "/api/v1/configurations?continue=" + q(sidTok), "continue"},      // another list's
		{admin, "/api/v1/users?limit=1&continue=" + q(sidTok), "continue"},       // the same table, another kind
		{admin, "/api/v1/service-ids?continue=eyJrIjpbXSwiZiI6IiJ9", "continue"}, // decodes, names nothing
		{b, "/api/v1/configurations?limit=2&continue=" + q(cfgTok), "continue"},  // another instance's
	} {
		r := c.who.call("GET", c.path, nil)
		if r.code != 400 || !strings.Contains(string(r.body), c.param) {
			t.Errorf("GET %s: %d %s, want 400 naming %s", c.path, r.code, r.body, c.param)
		}
	}
	// The token goes on where it belongs.
	if pg := getPage(t, admin, "/api/v1/configurations?limit=2&continue="+q(cfgTok), "configurations"); len(pg.items) != 2 {
		t.Errorf("second page: %d items", len(pg.items))
	}
}

// countingWriter discards an answer, noting its size and the most heap in
// use (after a collection) at any of its writes: what the handler holds
// while it streams.
type countingWriter struct {
	h        http.Header
	code     int
	n        int
	peakHeap uint64
}

func (w *countingWriter) Header() http.Header { return w.h }
func (w *countingWriter) WriteHeader(c int)   { w.code = c }
func (w *countingWriter) Write(b []byte) (int, error) {
	w.n += len(b)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w.peakHeap = max(w.peakHeap, ms.HeapAlloc)
	return len(b), nil
}

// A list asked for without a limit is written page by page: the heap the
// control plane holds while answering 10,000 configurations is about what
// it holds for 1,000, although the answer is ten times as long.
func TestWholeListIsStreamed(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	measure := func() (bytes int, peak uint64) {
		req := httptest.NewRequest("GET", "/api/v1/configurations", nil)
		req.Header.Set("Authorization", "Bearer "+admin.token)
		w := &countingWriter{h: http.Header{}}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		e.handler.ServeHTTP(w, req)
		if w.code != 200 {
			t.Fatalf("list: %d", w.code)
		}
		return w.n, w.peakHeap - min(base, w.peakHeap)
	}
	e.putConfigs(0, 1000)
	n1, peak1 := measure()
	e.putConfigs(1000, 10000)
	n10, peak10 := measure()
	t.Logf("1,000 configurations: %d bytes answered, heap above the start at most %d bytes; 10,000: %d bytes, at most %d", n1, peak1, n10, peak10)
	if n10 < 9*n1 {
		t.Fatalf("the answers are %d and %d bytes: the lists are not what the test made", n1, n10)
	}
	// Holding the list whole would hold at least its answer: the growth
	// would exceed the 9,000 objects' bytes. Streamed, it stays within a
	// fraction of it (a page, whatever the list's length).
	if grown := int64(peak10) - int64(peak1); grown > int64(n10-n1)/4 {
		t.Errorf("the heap held while answering grew by %d bytes from 1,000 to 10,000 configurations (answers %d and %d bytes): the list is held, not streamed", grown, n1, n10)
	}
}

// discard is a ResponseWriter that keeps only the status.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(c int)           { d.code = c }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkListConfigurations serves GET /api/v1/configurations in-process
// at 1,000 and 10,000 configurations: the whole list (streamed a page at a
// time), and one page of 100 (limit=100, the page after the first 900,
// by its continue token). The page costs the same whatever N; the whole list
// grows with N in time and bytes written, not in what is held (see
// TestWholeListIsStreamed).
func BenchmarkListConfigurations(b *testing.B) {
	e := newEnv(b, envOpts{})
	admin := e.admin()
	have := 0
	for _, n := range []int{1000, 10000} {
		e.putConfigs(have, n)
		have = n
		req := httptest.NewRequest("GET", "/api/v1/configurations?limit=900", nil)
		req.Header.Set("Authorization", "Bearer "+admin.token)
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		var first struct{ Metadata struct{ Continue string } }
		if err := json.Unmarshal(rec.Body.Bytes(), &first); err != nil || first.Metadata.Continue == "" {
			b.Fatalf("no token after the first 900: %v", err)
		}
		for _, c := range []struct{ name, path string }{
			{"whole", "/api/v1/configurations"},
			{"page100", "/api/v1/configurations?limit=100&continue=" + url.QueryEscape(first.Metadata.Continue)},
		} {
			b.Run(fmt.Sprintf("N=%d/%s", n, c.name), func(b *testing.B) {
				req := httptest.NewRequest("GET", c.path, nil)
				req.Header.Set("Authorization", "Bearer "+admin.token)
				b.ReportAllocs()
				for b.Loop() {
					w := &discard{h: http.Header{}}
					e.handler.ServeHTTP(w, req)
					if w.code != 200 {
						b.Fatalf("list: %d", w.code)
					}
				}
			})
		}
	}
}

// A list whose answer is one page — asked for a page, or short enough to
// be one — says its length (Content-Length), so it is sent whole rather
// than in chunks; a whole list of several pages is streamed in chunks, as
// it is written page by page. Either way the body is the complete list.
func TestOnePageListSaysItsLength(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	e.putConfigs(0, 50) // over net/http's 2 KB, which it would chunk
	for _, tc := range []struct {
		path  string
		items int
	}{
		{"/api/v1/configurations", 50},
		{"/api/v1/configurations?limit=40", 40},
	} {
		r := admin.call("GET", tc.path, nil)
		if r.code != 200 || len(r.body) < 2048 {
			t.Fatalf("GET %s: %d, %d bytes", tc.path, r.code, len(r.body))
		}
		if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(r.body)) {
			t.Errorf("GET %s: Content-Length %q for %d bytes", tc.path, got, len(r.body))
		}
		if n := len(getPage(t, admin, tc.path, "configurations").items); n != tc.items {
			t.Errorf("GET %s: %d items, want %d", tc.path, n, tc.items)
		}
	}
	e.putConfigs(50, iam.DefaultListPage+10)
	r := admin.call("GET", "/api/v1/configurations", nil)
	if got := r.header.Get("Content-Length"); r.code != 200 || got != "" {
		t.Errorf("a list of two pages: %d, Content-Length %q, want it streamed in chunks", r.code, got)
	}
	if n := len(getPage(t, admin, "/api/v1/configurations", "configurations").items); n != iam.DefaultListPage+10 {
		t.Errorf("a list of two pages has %d items, want %d", n, iam.DefaultListPage+10)
	}
}
