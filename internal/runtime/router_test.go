package runtime

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRouter(t *testing.T) {
	var unmatched []int
	r := newRouter(func(code int) { unmatched = append(unmatched, code) })
	ok := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			w.Write([]byte(name + ":" + req.PathValue("id")))
		}
	}
	for _, p := range []struct{ pattern, owner string }{
		{"GET /orders/{id}", "get"},
		{"DELETE /orders/{id}", "delete"},
		{"POST /orders", "create"},
		{"GET /orders/latest", "latest"},
	} {
		if err := r.handle(p.pattern, p.owner, ok(p.owner)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		method, path string
		status       int
		body         string // substring
		allow        string
	}{
		{"GET", "/orders/7", 200, "get:7", ""},
		{"HEAD", "/orders/7", 200, "", ""},
		{"DELETE", "/orders/7", 200, "delete:7", ""},
		{"GET", "/orders/latest", 200, "latest:", ""},
		{"POST", "/orders", 200, "create:", ""},
		{"PUT", "/orders/7", 405, `"code":405`, "DELETE, GET, HEAD"},
		{"GET", "/orders", 405, "not allowed", "POST"},
		{"GET", "/invoices/1", 404, `{"error":"Internal error","code":404,"reason":"NotFound","message":`, ""},
		{"GET", "/orders/7/lines", 404, "nothing is served", ""},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
		if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.body) || w.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d %q Allow=%q, want %d %q Allow=%q", tt.method, tt.path, w.Code, w.Body, w.Header().Get("Allow"), tt.status, tt.body, tt.allow)
		}
		if tt.status >= 400 {
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Code != tt.status {
				t.Errorf("%s %s: error body %q", tt.method, tt.path, w.Body)
			}
		}
	}
	if !slices.Equal(unmatched, []int{405, 405, 404, 404}) {
		t.Errorf("unmatched counted %v", unmatched)
	}

	conflicts := []struct{ pattern, want string }{
		{"GET /orders/{id}", `route GET /orders/{id} of "other" is also the route of get`},
		{"GET /orders/{key}", `conflicts with route GET /orders/{id} of get`},
		{"GET /{kind}/7", `conflicts with route GET /orders/{id} of get`},
	}
	for _, c := range conflicts {
		err := r.handle(c.pattern, `"other"`, ok("other"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("handle(%s) = %v, want %q", c.pattern, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "registered at") {
			t.Errorf("error names Go source: %v", err)
		}
	}
}

func TestWildcards(t *testing.T) {
	tests := map[string][]string{
		"/hello/{name}":             {"name"},
		"/orders/{customer}/{id}":   {"customer", "id"},
		"/files/{path...}":          {"path"},
		"/exact/{$}":                nil,
		"/plain":                    nil,
		"/a/{x}/b/{y}/{rest...}":    {"x", "y", "rest"},
		"/unterminated/{oops":       nil,
		"/mixed/{a}/{$}":            {"a"},
		"/{first}/literal/{second}": {"first", "second"},
	}
	for path, want := range tests {
		if got := wildcards(path); !slices.Equal(got, want) {
			t.Errorf("wildcards(%s) = %v, want %v", path, got, want)
		}
	}
}

func TestTraceBuffer(t *testing.T) {
	b := &traceBuffer{kind: TraceService, maxBytes: 300, redact: newRedactor(nil)}
	ev := func(msg string) {
		e := &serviceEvent{Type: TraceService, Event: "request", Message: msg}
		b.record(e, func(s uint64) { e.Seq = s })
	}
	ev("off") // not recording: dropped
	if st := b.status(); st.Events != 0 || st.Enabled {
		t.Fatalf("recorded while off: %+v", st)
	}
	b.start(time.Unix(0, 0))
	ch, backlog := b.subscribe(0, true)
	for i := range 10 {
		ev(strings.Repeat("x", i))
	}
	st := b.status()
	if st.Bytes > 300 || st.Evicted == 0 || st.Events+int(st.Evicted) != 10 {
		t.Errorf("status %+v: want at most 300 bytes and evictions", st)
	}
	events := b.snapshot()
	if events[len(events)-1].seq != 10 || !strings.Contains(string(events[len(events)-1].line), `"message":"xxxxxxxxx"`) {
		t.Errorf("newest event %s", events[len(events)-1].line)
	}
	if len(backlog) != 0 || len(ch) != 10 {
		t.Errorf("subscriber got backlog %d and %d live events, want 0 and 10", len(backlog), len(ch))
	}
	b.unsubscribe(ch)
	// A late subscriber resuming after seq 8 gets 9 and 10 replayed.
	ch2, backlog := b.subscribe(8, true)
	defer b.unsubscribe(ch2)
	if len(backlog) != 2 || backlog[0].seq != 9 {
		t.Errorf("replay after 8: %v", backlog)
	}
	b.stop(time.Unix(1, 0))
	ev("after stop")
	if b.status().Enabled || b.snapshot()[len(b.snapshot())-1].seq != 10 {
		t.Error("recorded after stop")
	}
	// Restarting begins a new recording; sequence numbers go on.
	b.start(time.Unix(2, 0))
	ev("new")
	if s := b.snapshot(); len(s) != 1 || s[0].seq != 11 {
		t.Errorf("after restart: %v", s)
	}
}
