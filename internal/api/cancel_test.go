package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

// A request whose client went away is logged as cancelled at info, not
// as a server error; a real failure still is an error.
func TestCancelledRequestIsNotAServerError(t *testing.T) {
	var logs bytes.Buffer
	a := &API{Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := httptest.NewRecorder()
	a.fail(w, httptest.NewRequest("GET", "/api/v1/configurations", nil).WithContext(ctx), fmt.Errorf("store: unable to list: %w", context.Canceled))
	if w.Code != statusClientClosedRequest || !strings.Contains(logs.String(), `"level":"INFO","msg":"request cancelled by the client"`) ||
		strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Fatalf("cancelled: %d, log %s", w.Code, logs.String())
	}

	logs.Reset()
	w = httptest.NewRecorder()
	a.fail(w, httptest.NewRequest("GET", "/api/v1/configurations", nil), errors.New("store: disk on fire"))
	if w.Code != 500 || !strings.Contains(logs.String(), `"level":"ERROR","msg":"request failed"`) {
		t.Fatalf("failure: %d, log %s", w.Code, logs.String())
	}
}
