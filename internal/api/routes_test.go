package api_test

import "testing"

// TestRouteTableAnswersAlikeOnceRemembered calls each route twice: the
// second time jsonMisses knows the literal routes from the first, and every
// answer (a route, a 405 with Allow, a 404 in JSON) must stay the same.
func TestRouteTableAnswersAlikeOnceRemembered(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	cases := []struct {
		method, path string
		code         int
		allow        string
	}{
		{"GET", "/api/v1/whoami", 200, ""},
		{"HEAD", "/api/v1/whoami", 200, ""},
		{"POST", "/api/v1/whoami", 405, "GET"},
		{"GET", "/api/v1/whoami/x", 404, ""},
		{"GET", "/api/v1/configurations", 200, ""},
		{"DELETE", "/api/v1/configurations", 405, "GET, POST"},
		{"GET", "/api/v1/configurations/missing", 404, ""},
		{"PATCH", "/api/v1/configurations/missing", 405, "GET, PUT, DELETE"},
	}
	for round := 1; round <= 2; round++ {
		for _, c := range cases {
			r := admin.call(c.method, c.path, nil)
			if r.code != c.code || r.header.Get("Allow") != c.allow {
				t.Errorf("round %d, %s %s: %d Allow=%q %s, want %d Allow=%q", round, c.method, c.path, r.code, r.header.Get("Allow"), r.body, c.code, c.allow)
			}
			if c.code >= 400 && c.method != "HEAD" && (len(r.body) == 0 || r.body[0] != '{') {
				t.Errorf("round %d, %s %s: not a JSON error: %s", round, c.method, c.path, r.body)
			}
		}
	}
}
