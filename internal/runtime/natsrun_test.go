package runtime

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/internal/connectors/natsconn"
	"github.com/sluice-dev/sluice/internal/flow"
)

// TestNATSTriggerRunPanicIsAFailedRun: a NATS trigger's runs execute on
// its own workers (runHere), not the runtime's; a panic there is the
// run's error — retried, then dead-lettered with it — and the worker,
// the process and the next message carry on.
func TestNATSTriggerRunPanicIsAFailedRun(t *testing.T) {
	prefix := benchPrefix()
	nc, err := nats.Connect(benchNATSURL())
	if err != nil {
		t.Fatalf("NATS at %s: %v", benchNATSURL(), err)
	}
	defer nc.Close()
	dead, err := nc.SubscribeSync(prefix + ".dead")
	if err != nil {
		t.Fatal(err)
	}
	out, err := nc.SubscribeSync(prefix + ".out")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	proj := "trigger:\n  nats: {connection: bus, subject: " + prefix + ".in, maxInFlight: 2, retry: {attempts: 2, backoff: 1ms}, deadLetter: " + prefix + ".dead}\n" +
		"steps:\n  - publish: {connection: bus, subject: " + prefix + ".out}\n"
	rt := natsRuntime(t, proj)
	lf := rt.flows[0]
	var runs atomic.Int64
	lf.exec = func(ctx context.Context, msg *flow.Message, tr flow.Tracer) (*flow.Response, error) {
		runs.Add(1)
		if msg.Body.(map[string]any)["panic"] == true {
			panic("boom")
		}
		return lf.f.Run(ctx, msg, tr)
	}
	startNATS(t, rt)
	// Core NATS drops what is published before the trigger's
	// subscription reached the server: probe until a message comes back.
	for deadline := time.Now().Add(time.Minute); ; {
		nc.Publish(prefix+".in", []byte(`{"probe": true}`))
		nc.Flush()
		if _, err := out.NextMsg(100 * time.Millisecond); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the trigger never answered")
		}
	}
	for {
		if _, err := out.NextMsg(100 * time.Millisecond); err != nil {
			break // late answers to the probes are read
		}
	}
	runs.Store(0)

	nc.Publish(prefix+".in", []byte(`{"panic": true}`))
	nc.Flush()
	m, err := dead.NextMsg(time.Minute)
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if got := m.Header.Get(natsconn.HeaderError); !strings.Contains(got, "panic: boom") || m.Header.Get(natsconn.HeaderAttempts) != "2" {
		t.Errorf("dead letter error %q after %s attempts", got, m.Header.Get(natsconn.HeaderAttempts))
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("%d runs, want 2 (attempts)", n)
	}
	nc.Publish(prefix+".in", []byte(`{"n": 1}`))
	nc.Flush()
	m, err = out.NextMsg(time.Minute)
	if err != nil {
		t.Fatalf("the next message was not processed: %v", err)
	}
	if string(m.Data) != `{"n":1}` {
		t.Errorf("published %s", m.Data)
	}
	if n := lf.inFlight.Load(); n != 0 {
		t.Errorf("flow in flight %d after the runs, want 0", n)
	}
}
