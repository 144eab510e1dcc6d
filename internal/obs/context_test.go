package obs_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/obs"
)

// The access log line names its request id itself, and the logger adds
// the id of the line's context: the line must carry it once, first, and
// a line naming another id keeps the context's (the request's).
func TestAccessLogNamesItsRequestOnce(t *testing.T) {
	var buf bytes.Buffer
	log, err := obs.NewLogger(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	h := obs.Middleware(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "inner", "request_id", "someone-else's")
		w.WriteHeader(http.StatusNoContent)
	}))
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set(obs.HeaderRequestID, "req-1")
	h.ServeHTTP(httptest.NewRecorder(), req)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	if strings.Count(lines[0], `"request_id"`) != 1 || !strings.Contains(lines[0], `"request_id":"req-1"`) {
		t.Errorf("inner line: %s", lines[0])
	}
	access := lines[1]
	if strings.Count(access, `"request_id"`) != 1 || !strings.Contains(access, `"msg":"request","request_id":"req-1","method":"GET","path":"/x","status":204,`) {
		t.Errorf("access line: %s", access)
	}

	// Outside a request nothing is added.
	buf.Reset()
	log.InfoContext(context.Background(), "alone", "request_id", "given")
	if got := buf.String(); strings.Count(got, `"request_id"`) != 1 || !strings.Contains(got, `"request_id":"given"`) {
		t.Errorf("line without a request: %s", got)
	}
}
