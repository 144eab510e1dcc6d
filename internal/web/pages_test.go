package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Pages are parsed when first rendered, not when the dashboard is
// mounted (an idle control plane whose dashboard is never opened holds
// none of them), and every page parses.
func TestPagesParseAtFirstUse(t *testing.T) {
	d := &Dashboard{}
	h := d.Handler()
	if len(d.pages) == 0 {
		t.Fatal("no pages")
	}
	for name, p := range d.pages {
		if p.t != nil {
			t.Fatalf("page %s was parsed before its first use", name)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<form") {
		t.Fatalf("GET /login: %d %.200s", rec.Code, rec.Body.String())
	}
	for name, p := range d.pages {
		if parsed := p.t != nil; parsed != (name == "login") {
			t.Errorf("after GET /login, page %s parsed: %v", name, parsed)
		}
	}
	for _, p := range d.pages {
		p.template() // panics on a page that does not parse
	}
}
