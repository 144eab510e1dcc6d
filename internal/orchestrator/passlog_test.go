package orchestrator

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
)

// A pass that fails the same way every 2 s is logged once, again when
// its message changes or 5 minutes on, and its end once.
func TestRepeatedPassFailuresAreLoggedOnChange(t *testing.T) {
	var buf bytes.Buffer
	p := &passLog{log: slog.New(slog.NewTextHandler(&buf, nil))}
	clk := clocktest.New(0)
	forbidden := errors.New(`the cluster, asked to list Deployments, answered 403 Forbidden`)
	lines := func() int { return strings.Count(buf.String(), "\n") }
	for range 100 { // 200 s of passes
		p.pass(forbidden, clk.Now())
		clk.Add(2 * time.Second)
	}
	if n := lines(); n != 1 {
		t.Fatalf("%d lines for 100 identical failures:\n%s", n, buf.String())
	}
	p.pass(errors.New("the cluster did not answer"), clk.Now())
	if n := lines(); n != 2 {
		t.Fatalf("a new failure was not logged:\n%s", buf.String())
	}
	p.pass(forbidden, clk.Now()) // changed back: logged
	clk.Add(passLogEvery - time.Second)
	p.pass(forbidden, clk.Now())
	if n := lines(); n != 3 {
		t.Fatalf("%d lines, want 3:\n%s", n, buf.String())
	}
	clk.Add(time.Second)
	p.pass(forbidden, clk.Now()) // still failing 5 minutes on: logged again
	if n := lines(); n != 4 || !strings.Contains(buf.String(), "failedPasses=104") {
		t.Fatalf("%d lines, want 4 with the count:\n%s", n, buf.String())
	}
	p.pass(nil, clk.Now())
	p.pass(nil, clk.Now())
	if n := lines(); n != 5 || !strings.Contains(buf.String(), "reconcile passes succeed again") {
		t.Fatalf("recovery not logged once:\n%s", buf.String())
	}
	p.pass(forbidden, clk.Now()) // a failure after recovery is new
	if n := lines(); n != 6 {
		t.Fatalf("a failure after recovery was not logged:\n%s", buf.String())
	}
}
