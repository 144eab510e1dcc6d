package runtime

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/flow"
)

// TestRunIsolation drives a flow whose runs misbehave in ways the engine
// itself never does: the runtime must still answer, keep the quota, and
// survive.
func TestRunIsolation(t *testing.T) {
	rt := loadedRuntime(t, "../../examples/hello")
	var lf *loadedFlow
	for _, f := range rt.flows {
		lf = f
	}
	lf.timeout = 10 * time.Millisecond
	lf.maxInFlight = 2
	serve := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		rt.router.ServeHTTP(w, httptest.NewRequest("GET", "/hello/x", nil))
		return w
	}

	// A run that ignores cancellation is answered 504 and abandoned; it
	// keeps its slot until it really ends.
	release := make(chan struct{})
	lf.exec = func(ctx context.Context, _ *flow.Message, _ flow.Tracer) (*flow.Response, error) {
		<-release
		return &flow.Response{Body: "late"}, nil
	}
	for i := range 2 {
		if w := serve(); w.Code != http.StatusGatewayTimeout || !strings.Contains(w.Body.String(), "did not answer within 10ms") {
			t.Fatalf("stuck run %d: %d %s", i, w.Code, w.Body)
		}
	}
	if n := lf.inFlight.Load(); n != 2 {
		t.Fatalf("in flight %d, want the 2 abandoned runs", n)
	}
	// The quota is full of abandoned runs: refused at once, not queued.
	if w := serve(); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("over quota: %d %s", w.Code, w.Body)
	}
	close(release)
	deadline := time.Now().Add(time.Minute)
	for lf.inFlight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("abandoned runs never released their slots")
		}
		time.Sleep(time.Millisecond)
	}

	// A panicking run is a 500 with the request id; the process goes on.
	lf.exec = func(context.Context, *flow.Message, flow.Tracer) (*flow.Response, error) {
		panic("engine bug")
	}
	w := serve()
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), w.Header().Get("X-Request-Id")) {
		t.Fatalf("panicking run: %d %s", w.Code, w.Body)
	}

	// Errors that are not flow errors do not leak their text.
	lf.exec = func(context.Context, *flow.Message, flow.Tracer) (*flow.Response, error) {
		return nil, errors.New("internal detail at 10.0.0.7")
	}
	if w := serve(); w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "10.0.0.7") {
		t.Fatalf("internal error: %d %s", w.Code, w.Body)
	}

	// Back to the real engine: the flow answers normally.
	lf.exec = nil
	lf.timeout = time.Minute
	if w := serve(); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Hello, x!") {
		t.Fatalf("after recovery: %d %s", w.Code, w.Body)
	}
}
