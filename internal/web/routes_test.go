package web

import (
	"net/http/httptest"
	"testing"
)

// TestNoPageUnderAPI holds what Mount relies on to hand /api/ paths to the
// API without matching the dashboard's table: no page takes one, for any
// method (a wildcard first segment would, and would need Mount changed).
func TestNoPageUnderAPI(t *testing.T) {
	mux := (&Dashboard{}).routes()
	for _, path := range []string{"/api/", "/api/v1", "/api/v1/whoami", "/api/v1/integration-runtimes/x", "/api/public/v1/workspaces", "/api/token"} {
		for _, method := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"} {
			if _, pattern := mux.Handler(httptest.NewRequest(method, path, nil)); pattern != "" {
				t.Errorf("%s %s is taken by the dashboard's %q", method, path, pattern)
			}
		}
	}
}
