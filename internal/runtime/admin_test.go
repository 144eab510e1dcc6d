package runtime

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/secret"
)

// TestReadinessFollowsTheLoad checks the admin answers through the
// runtime's states: loading (not ready, no listing), ready, draining.
func TestReadinessFollowsTheLoad(t *testing.T) {
	rt := loadedRuntime(t, "../../examples/hello")
	rt.state.Store("loading")
	rt.adminToken = secret.New("admin-credential")
	admin := rt.adminHandler()
	call := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("Authorization", "Bearer admin-credential")
		admin.ServeHTTP(w, r)
		return w
	}
	tests := []struct {
		state             string
		readyz, flows     int
		readyBody, health string
	}{
		{"loading", http.StatusServiceUnavailable, http.StatusServiceUnavailable, `"loading"`, `"ok"`},
		{"ready", http.StatusOK, http.StatusOK, `"ready"`, `"ok"`},
		{"draining", http.StatusServiceUnavailable, http.StatusOK, `"draining"`, `"ok"`},
	}
	for _, tt := range tests {
		rt.state.Store(tt.state)
		if w := call("/readyz"); w.Code != tt.readyz || !strings.Contains(w.Body.String(), tt.readyBody) {
			t.Errorf("%s: readyz %d %s", tt.state, w.Code, w.Body)
		}
		if w := call("/flows"); w.Code != tt.flows {
			t.Errorf("%s: flows %d %s", tt.state, w.Code, w.Body)
		}
		if w := call("/healthz"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), tt.health) {
			t.Errorf("%s: healthz %d %s", tt.state, w.Code, w.Body)
		}
	}
	if w := call("/nothing"); w.Code != http.StatusNotFound || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("unknown admin path: %d %s", w.Code, w.Body)
	}
	w := httptest.NewRecorder()
	admin.ServeHTTP(w, httptest.NewRequest("PUT", "/trace/user/start", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Errorf("PUT /trace/user/start: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
}
