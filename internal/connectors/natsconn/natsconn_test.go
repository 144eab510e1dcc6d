package natsconn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/flow"
)

// These tests run against the machine's NATS server with JetStream
// (SLUICE_TEST_NATS, default nats://127.0.0.1:4222). Every test uses
// subjects and streams of its own, so runs never see each other's
// messages.

// waitLong only guards against hanging; nothing asserts how long
// anything took.
const waitLong = 60 * time.Second

func natsURL() string {
	if u := os.Getenv("SLUICE_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

func unique(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// server is the test's own client of the server, for setting up streams
// and publishing and reading messages.
func server(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(natsURL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("NATS at %s: %v", natsURL(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func stream(t *testing.T, js jetstream.JetStream, name string, subjects ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: subjects, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	t.Cleanup(func() { js.DeleteStream(context.Background(), name) })
}

func connection() *flow.Connection {
	return &flow.Connection{Name: "test", Type: "nats", URL: natsURL(), Options: map[string]any{}}
}

type counters struct{ received, acked, retried, dead, inFlight, maxInFlight atomic.Int64 }

func (c *counters) Received()     { c.received.Add(1) }
func (c *counters) Acked()        { c.acked.Add(1) }
func (c *counters) Retried()      { c.retried.Add(1) }
func (c *counters) DeadLettered() { c.dead.Add(1) }
func (c *counters) InFlight(d int) {
	n := c.inFlight.Add(int64(d))
	for {
		m := c.maxInFlight.Load()
		if n <= m || c.maxInFlight.CompareAndSwap(m, n) {
			return
		}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLong):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func drain(t *testing.T, c *Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := c.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func TestCoreQueueGroupSharesMessages(t *testing.T) {
	nc, _ := server(t)
	subj := unique("core.")
	var mu sync.Mutex
	seen := map[string]int{}
	byConsumer := [2]int{}
	pools := []*Pool{NewPool(nil), NewPool(nil)}
	var cs []*Consumer
	var cnt counters
	for i, p := range pools {
		t.Cleanup(p.Close)
		trig := &flow.NATSTrigger{Connection: connection(), Subject: subj, Queue: "workers",
			Delivery: flow.Delivery{MaxInFlight: 4, Attempts: 1}}
		c, err := p.Start(context.Background(), trig, "test/core", func(_ context.Context, m *flow.Message) (*flow.Response, error) {
			mu.Lock()
			defer mu.Unlock()
			seen[fmt.Sprint(m.Body.(map[string]any)["n"])]++
			byConsumer[i]++
			if m.Source["subject"] != subj || m.Source["queue"] != "workers" {
				t.Errorf("message %+v", m)
			}
			return &flow.Response{Status: 200, Body: map[string]any{"ok": m.Body}}, nil
		}, &cnt)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for _, p := range pools {
		for _, cn := range p.conns {
			cn.nc.Flush() // the subscriptions reached the server
		}
	}
	const n = 40
	for i := range n {
		m := &nats.Msg{Subject: subj, Data: fmt.Appendf(nil, `{"n": %d}`, i), Header: nats.Header{"X-N": {fmt.Sprint(i)}}}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "all messages processed", func() bool { return cnt.acked.Load() == n })
	mu.Lock()
	for i := range n {
		if seen[fmt.Sprint(i)] != 1 {
			t.Errorf("message %d processed %d times, want once in the queue group", i, seen[fmt.Sprint(i)])
		}
	}
	mu.Unlock()

	// Request-reply: the flow's answer body goes back to the requester.
	reply, err := nc.Request(subj, []byte(`{"n": "req"}`), waitLong)
	if err != nil {
		t.Fatal(err)
	}
	if string(reply.Data) != `{"ok":{"n":"req"}}` {
		t.Errorf("reply %s", reply.Data)
	}
	for _, c := range cs {
		drain(t, c)
	}
}

func TestJetStreamAcksRetriesAndDeadLetters(t *testing.T) {
	nc, js := server(t)
	name := unique("JS")
	stream(t, js, name, name+".in.>")
	stream(t, js, name+"_DL", name+".dead")
	dead, err := nc.SubscribeSync(name + ".dead")
	if err != nil {
		t.Fatal(err)
	}
	_ = dead
	trig := &flow.NATSTrigger{Connection: connection(), Subject: name + ".in.>", Stream: name, Consumer: "writer", AckWait: 30 * time.Second,
		Delivery: flow.Delivery{MaxInFlight: 2, Attempts: 3, Backoff: 10 * time.Millisecond, Exponential: true, DeadLetter: name + ".dead"}}
	var cnt counters
	var mu sync.Mutex
	deliveries := map[string][]int{}
	p := NewPool(nil)
	t.Cleanup(p.Close)
	c, err := p.Start(context.Background(), trig, "test/js", func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		kind := m.Body.(map[string]any)["kind"].(string)
		d := m.Source["delivered"].(int)
		mu.Lock()
		deliveries[kind] = append(deliveries[kind], d)
		mu.Unlock()
		switch {
		case kind == "flaky" && d < 3, kind == "poison":
			return nil, fmt.Errorf("%s failed on delivery %d", kind, d)
		}
		return &flow.Response{Status: 200}, nil
	}, &cnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"ok", "flaky", "poison"} {
		if _, err := js.Publish(context.Background(), name+".in."+kind, fmt.Appendf(nil, `{"kind": %q}`, kind)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "ok and flaky acked, poison dead-lettered", func() bool { return cnt.acked.Load() == 2 && cnt.dead.Load() == 1 })

	mu.Lock()
	if fmt.Sprint(deliveries["ok"]) != "[1]" || fmt.Sprint(deliveries["flaky"]) != "[1 2 3]" || fmt.Sprint(deliveries["poison"]) != "[1 2 3]" {
		t.Errorf("deliveries %v", deliveries)
	}
	mu.Unlock()
	if cnt.retried.Load() != 4 || cnt.received.Load() != 7 {
		t.Errorf("retried %d, received %d; want 4, 7", cnt.retried.Load(), cnt.received.Load())
	}

	// The dead letter is stored, with the original payload and the error.
	dl, err := js.Stream(context.Background(), name+"_DL")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := dl.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw.Data) != `{"kind": "poison"}` || raw.Header.Get(HeaderError) != "poison failed on delivery 3" ||
		raw.Header.Get(HeaderAttempts) != "3" || raw.Header.Get(HeaderSubject) != name+".in.poison" || raw.Header.Get(HeaderFlow) != "test/js" {
		t.Errorf("dead letter %s %v", raw.Data, raw.Header)
	}

	// Nothing is left pending: every message was acked or terminated.
	cons, err := js.Consumer(context.Background(), name, "writer")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "no message pending", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0
	})
	drain(t, c)
}

func TestJetStreamMaxInFlightAndDrain(t *testing.T) {
	_, js := server(t)
	name := unique("JS")
	stream(t, js, name, name+".>")
	release := make(chan struct{})
	started := make(chan int, 10)
	trig := &flow.NATSTrigger{Connection: connection(), Subject: name + ".>", Stream: name, Consumer: "c", AckWait: 30 * time.Second,
		Delivery: flow.Delivery{MaxInFlight: 2, Attempts: 1, Backoff: time.Millisecond}}
	var cnt counters
	p := NewPool(nil)
	t.Cleanup(p.Close)
	c, err := p.Start(context.Background(), trig, "test/mif", func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		started <- m.Source["sequence"].(int)
		<-release
		return &flow.Response{Status: 200}, nil
	}, &cnt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := js.Publish(context.Background(), fmt.Sprintf("%s.%d", name, i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	receive(t, started, "first run")
	receive(t, started, "second run")
	// Two runs hold the two slots; the server has nothing more to give
	// until one is acked (MaxAckPending), so a third cannot start.
	cons, _ := js.Consumer(context.Background(), name, "c")
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 2 || cnt.inFlight.Load() != 2 {
		t.Fatalf("ack pending %d, in flight %d; want 2, 2", info.NumAckPending, cnt.inFlight.Load())
	}
	close(release)
	eventually(t, "all acked", func() bool { return cnt.acked.Load() == 5 })
	if cnt.maxInFlight.Load() != 2 {
		t.Errorf("max in flight %d, want 2", cnt.maxInFlight.Load())
	}
	drain(t, c)
}

// TestJetStreamRedeliversWhatADeadConsumerHeld: a consumer whose process
// dies mid-flow never acks; its message comes back to the next consumer
// of the same durable after ackWait (at least once).
func TestJetStreamRedeliversWhatADeadConsumerHeld(t *testing.T) {
	_, js := server(t)
	name := unique("JS")
	stream(t, js, name, name+".>")
	trig := &flow.NATSTrigger{Connection: connection(), Subject: name + ".>", Stream: name, Consumer: "durable", AckWait: time.Second,
		Delivery: flow.Delivery{MaxInFlight: 1, Attempts: 3, Backoff: time.Millisecond}}

	first := NewPool(nil)
	started := make(chan struct{}, 1)
	hang := make(chan struct{})
	defer close(hang)
	if _, err := first.Start(context.Background(), trig, "test/a", func(context.Context, *flow.Message) (*flow.Response, error) {
		started <- struct{}{}
		<-hang // the process "dies" before the flow ends
		return nil, errors.New("never")
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), name+".order", []byte(`{"id": 1}`)); err != nil {
		t.Fatal(err)
	}
	receive(t, started, "first delivery")
	first.Close() // the connection goes away without an ack

	got := make(chan *flow.Message, 1)
	second := NewPool(nil)
	t.Cleanup(second.Close)
	c, err := second.Start(context.Background(), trig, "test/b", func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		got <- m
		return &flow.Response{Status: 200}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := receive(t, got, "redelivery")
	if m.Source["delivered"] != 2 || m.Body.(map[string]any)["id"] == nil {
		t.Errorf("redelivered %+v", m)
	}
	drain(t, c)
}

func TestPublish(t *testing.T) {
	nc, js := server(t)
	name := unique("PUB")
	stream(t, js, name, name+".js")
	p := NewPool(nil)
	t.Cleanup(p.Close)
	sub, err := nc.SubscribeSync(name + ".core")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	res, err := p.Publish(context.Background(), connection(), &flow.Outgoing{Subject: name + ".core", Body: []byte(`{"a":1}`), Headers: map[string]string{"x-a": "1"}})
	if err != nil || res["subject"] != name+".core" {
		t.Fatalf("core publish: %v %v", res, err)
	}
	m, err := sub.NextMsg(waitLong)
	if err != nil || string(m.Data) != `{"a":1}` || m.Header.Get("x-a") != "1" {
		t.Fatalf("received %v %v", m, err)
	}
	// Confirmed: the stream stored it; the same Nats-Msg-Id again is a
	// duplicate the stream drops (how at-least-once flows avoid doubles).
	for i, wantDup := range []bool{false, true} {
		res, err = p.Publish(context.Background(), connection(), &flow.Outgoing{Subject: name + ".js", Body: []byte("x"), Confirm: true,
			Headers: map[string]string{"Nats-Msg-Id": "order-1"}})
		if err != nil || res["stream"] != name || res["sequence"] != 1 || res["duplicate"] != wantDup {
			t.Fatalf("confirmed publish %d: %v %v", i, res, err)
		}
	}
	// No stream takes the subject: a confirmed publish fails.
	if _, err := p.Publish(context.Background(), connection(), &flow.Outgoing{Subject: unique("nostream."), Body: []byte("x"), Confirm: true}); err == nil {
		t.Fatal("confirmed publish to a subject no stream stores succeeded")
	}
}

// TestCoreMaxInFlightAndDrain: a core trigger runs at most maxInFlight
// messages at once on its workers, the others wait in the client and
// all are processed; a drain waits for those in flight to finish.
func TestCoreMaxInFlightAndDrain(t *testing.T) {
	nc, _ := server(t)
	subj := unique("core.")
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	trig := &flow.NATSTrigger{Connection: connection(), Subject: subj, Delivery: flow.Delivery{MaxInFlight: 3, Attempts: 1}}
	var cnt counters
	var finished atomic.Int64
	p := NewPool(nil)
	t.Cleanup(p.Close)
	c, err := p.Start(context.Background(), trig, "test/mif", func(context.Context, *flow.Message) (*flow.Response, error) {
		started <- struct{}{}
		<-release
		finished.Add(1)
		return &flow.Response{Status: 200}, nil
	}, &cnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, cn := range p.conns {
		cn.nc.Flush()
	}
	const n = 10
	for i := range n {
		if err := nc.Publish(subj, fmt.Appendf(nil, `{"n": %d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	for range 3 {
		receive(t, started, "a run")
	}
	// Three runs hold the three workers; the fourth message waits.
	if got := cnt.inFlight.Load(); got != 3 {
		t.Fatalf("in flight %d, want 3", got)
	}
	select {
	case <-started:
		t.Fatal("a fourth run started with maxInFlight 3")
	default:
	}
	close(release)
	eventually(t, "all processed", func() bool { return cnt.acked.Load() == n })
	if cnt.maxInFlight.Load() != 3 {
		t.Errorf("max in flight %d, want 3", cnt.maxInFlight.Load())
	}
	for len(started) > 0 {
		<-started // the other seven runs' starts, all sent before their acks
	}

	// A drain returns only after the run in progress finished.
	release = make(chan struct{})
	if err := nc.Publish(subj, []byte(`{"n": "last"}`)); err != nil {
		t.Fatal(err)
	}
	receive(t, started, "the last run")
	drained := make(chan int64, 1)
	go func() {
		if err := c.Drain(context.Background()); err != nil {
			t.Error(err)
		}
		drained <- finished.Load()
	}()
	close(release)
	if got := receive(t, drained, "drain"); got != n+1 {
		t.Errorf("drain returned with %d runs finished, want %d", got, n+1)
	}
}
