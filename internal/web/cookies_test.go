package web

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The login form's cookie carries the flags every dashboard cookie gets:
// HttpOnly, SameSite=Lax, and Secure exactly when TLS is in the path.
func TestCookieFlagsAndHeaders(t *testing.T) {
	for _, tc := range []struct {
		name       string
		publicURL  string
		tls        bool
		wantSecure bool
	}{
		{"plain http", "http://127.0.0.1:8080", false, false},
		{"tls here", "http://127.0.0.1:8080", true, true},
		{"tls in front", "https://sluice.example", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Dashboard{PublicURL: tc.publicURL}
			req := httptest.NewRequest("GET", "/login", nil)
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			}
			rec := httptest.NewRecorder()
			d.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET /login = %d", rec.Code)
			}
			cs := rec.Result().Cookies()
			if len(cs) != 1 || cs[0].Name != loginCookie {
				t.Fatalf("cookies = %v", cs)
			}
			c := cs[0]
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tc.wantSecure {
				t.Errorf("cookie flags: HttpOnly=%v SameSite=%v Secure=%v, want Secure=%v", c.HttpOnly, c.SameSite, c.Secure, tc.wantSecure)
			}
			h := rec.Header()
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("Content-Security-Policy = %q", csp)
			}
			if h.Get("Cache-Control") != "no-store" || h.Get("X-Frame-Options") != "DENY" {
				t.Errorf("Cache-Control = %q, X-Frame-Options = %q", h.Get("Cache-Control"), h.Get("X-Frame-Options"))
			}
			// The form's hidden token is the cookie's value (double submit).
			if !strings.Contains(rec.Body.String(), `name="csrf" value="`+c.Value+`"`) {
				t.Errorf("the login form does not carry the cookie's token")
			}
		})
	}
}

// Nothing on any page loads from elsewhere: no absolute URLs in src or
// href of the templates, no inline scripts or styles.
func TestTemplatesLoadNothingFromElsewhere(t *testing.T) {
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := templateFS.ReadFile("templates/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, bad := range []string{`src="http`, `href="http`, `src="//`, `href="//`, "<style", "<script>", " style=", " onclick=", " onsubmit="} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", e.Name(), bad)
			}
		}
	}
}
