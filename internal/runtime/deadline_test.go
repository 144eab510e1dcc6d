package runtime

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/obs"
)

// TestRunCtx: the run context ends at its deadline without a timer when
// only Err is asked, and closes Done as context.WithDeadline does when
// its parent ends or its deadline has passed.
func TestRunCtx(t *testing.T) {
	// A deadline already passed: Err says so, and Done is closed.
	c := newRunCtx(context.Background(), 0)
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline: %v", err)
	}
	<-c.Done()
	c.release()

	// Done asked first, deadline already passed: closed at once.
	c = newRunCtx(context.Background(), 0)
	<-c.Done()
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after Done: %v", err)
	}
	c.release()

	// The parent ends: Done closes and Err is the parent's.
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	c = newRunCtx(parent, time.Hour)
	if c.Err() != nil {
		t.Fatal("ended before its deadline")
	}
	if c.Value(ctxKey{}) != "v" {
		t.Fatal("the parent's values are not visible")
	}
	if d, ok := c.Deadline(); !ok || d.IsZero() {
		t.Fatal("no deadline")
	}
	done := c.Done()
	cancel()
	<-done
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after the parent ended: %v", err)
	}
	c.release()

	// Released: ended, and Done (made late) is closed.
	c = newRunCtx(context.Background(), time.Hour)
	c.release()
	<-c.Done()
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after release: %v", err)
	}
}

type ctxKey struct{}

// TestLocalFlowTimesOut: a local flow runs on the request's goroutine,
// without a timer, and still ends with the runtime's 504 when its timeout
// has passed.
func TestLocalFlowTimesOut(t *testing.T) {
	rt := loadedRuntime(t, "../../bench/project")
	for _, lf := range rt.flows {
		if !lf.local {
			t.Fatalf("flow %s is not local", lf.f.Name)
		}
		lf.timeout = time.Nanosecond
	}
	w := httptest.NewRecorder()
	rt.router.ServeHTTP(w, httptest.NewRequest("POST", "/transform/acme", strings.NewReader(benchBody)))
	if w.Code != http.StatusGatewayTimeout || !strings.Contains(w.Body.String(), "did not answer within 1ns") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for _, lf := range rt.flows {
		if n := lf.inFlight.Load(); n != 0 {
			t.Fatalf("flow %s: %d runs in flight after the answer", lf.f.Name, n)
		}
	}
}

// TestRunCtxRequestID: a message run's context answers obs.RequestID
// from its prefix and sequence number, before and after it ended; other
// values come from its parent, and without a sequence number so does
// the id.
func TestRunCtxRequestID(t *testing.T) {
	type key struct{}
	parent := context.WithValue(obs.WithRequestID(context.Background(), "outer"), key{}, "v")
	c := newRunCtx(parent, time.Hour)
	if got := obs.RequestID(c); got != "outer" {
		t.Errorf("without a sequence number: %q", got)
	}
	c.idPrefix, c.idSeq = "ab12-", 42
	if got := obs.RequestID(c); got != "ab12-m42" {
		t.Errorf("request id %q", got)
	}
	c.release()
	if got, v := obs.RequestID(c), c.Value(key{}); got != "ab12-m42" || v != "v" {
		t.Errorf("after release: %q, %v", got, v)
	}
}
