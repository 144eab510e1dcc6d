package amqpconn

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

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/secret"
)

// These tests run against the machine's RabbitMQ (SLUICE_TEST_AMQP,
// default amqp://127.0.0.1:5672/ with guest/guest from setdbparms-style
// credentials); each test declares queues of its own and deletes them.

const waitLong = 60 * time.Second

func amqpURL() string {
	if u := os.Getenv("SLUICE_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://127.0.0.1:5672/"
}

func connection() *flow.Connection {
	return &flow.Connection{Name: "rabbit", Type: "amqp", URL: amqpURL(), Options: map[string]any{},
		Credential: &flow.Credential{User: "guest", Password: secret.New("guest")}}
}

func unique(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// broker is the test's own channel, for declaring, deleting and reading.
func broker(t *testing.T) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial("amqp://guest:guest@" + amqpURL()[len("amqp://"):])
	if err != nil {
		t.Fatalf("RabbitMQ at %s: %v", amqpURL(), err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func queue(t *testing.T, ch *amqp.Channel, name string) {
	t.Helper()
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.QueueDelete(name, false, false, false) })
}

type counters struct{ received, acked, retried, dead, inFlight, maxInFlight atomic.Int64 }

func (c *counters) Received()     { c.received.Add(1) }
func (c *counters) Acked()        { c.acked.Add(1) }
func (c *counters) Retried()      { c.retried.Add(1) }
func (c *counters) DeadLettered() { c.dead.Add(1) }
func (c *counters) InFlight(d int) {
	n := c.inFlight.Add(int64(d))
	for m := c.maxInFlight.Load(); n > m && !c.maxInFlight.CompareAndSwap(m, n); m = c.maxInFlight.Load() {
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

func drain(t *testing.T, c *Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := c.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func TestConsumeAckRetryDeadLetter(t *testing.T) {
	ch := broker(t)
	q := unique("sluice.q.")
	t.Cleanup(func() { ch.QueueDelete(q, false, false, false); ch.QueueDelete(q+".dead", false, false, false) })
	trig := &flow.AMQPTrigger{Connection: connection(), Queue: q, Declare: true,
		Delivery: flow.Delivery{MaxInFlight: 2, Attempts: 3, Backoff: 5 * time.Millisecond, DeadLetter: q + ".dead"}}
	p := NewPool(nil)
	t.Cleanup(p.Close)
	var cnt counters
	var mu sync.Mutex
	runs := map[string][]int{}
	c, err := p.Start(context.Background(), trig, "test/amqp", func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		kind := m.Body.(map[string]any)["kind"].(string)
		d := m.Source["delivered"].(int)
		mu.Lock()
		runs[kind] = append(runs[kind], d)
		mu.Unlock()
		if m.Source["queue"] != q || m.Headers["x-kind"] != kind {
			t.Errorf("message %+v", m)
		}
		if kind == "poison" || (kind == "flaky" && d < 2) {
			return nil, fmt.Errorf("%s failed on run %d", kind, d)
		}
		return &flow.Response{Status: 200}, nil
	}, &cnt)
	if err != nil {
		t.Fatal(err)
	}
	// The consumer declared the queue; publishing waits for it.
	eventually(t, "the queue to be declared", func() bool {
		_, err := p.Publish(context.Background(), connection(), &flow.Outgoing{RoutingKey: q, Body: []byte(`{"kind":"probe"}`), Headers: map[string]string{"x-kind": "probe"}})
		return err == nil
	})
	for _, kind := range []string{"ok", "flaky", "poison"} {
		res, err := p.Publish(context.Background(), connection(), &flow.Outgoing{RoutingKey: q, Body: fmt.Appendf(nil, `{"kind":%q}`, kind), Headers: map[string]string{"x-kind": kind}})
		if err != nil || res["routingKey"] != q {
			t.Fatalf("publish %s: %v %v", kind, res, err)
		}
	}
	eventually(t, "everything handled", func() bool { return cnt.acked.Load() == 3 && cnt.dead.Load() == 1 })
	mu.Lock()
	if fmt.Sprint(runs["ok"], runs["flaky"], runs["poison"]) != "[1] [1 2] [1 2 3]" {
		t.Errorf("runs %v", runs)
	}
	mu.Unlock()
	if cnt.retried.Load() != 3 || cnt.maxInFlight.Load() > 2 {
		t.Errorf("retried %d (want 3), max in flight %d (at most 2)", cnt.retried.Load(), cnt.maxInFlight.Load())
	}
	var dl amqp.Delivery
	eventually(t, "the dead letter", func() bool {
		var ok bool
		dl, ok, _ = ch.Get(q+".dead", true)
		return ok
	})
	if string(dl.Body) != `{"kind":"poison"}` || dl.Headers[HeaderError] != "poison failed on run 3" || dl.Headers[HeaderAttempts] != int32(3) ||
		dl.Headers[HeaderQueue] != q || dl.Headers["x-kind"] != "poison" {
		t.Errorf("dead letter %s %v", dl.Body, dl.Headers)
	}
	drain(t, c)
	if qi, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil || qi.Messages != 0 {
		t.Errorf("queue left with %d messages (%v)", qi.Messages, err)
	}
}

func TestUnackedMessageIsRedeliveredWhenTheConsumerDies(t *testing.T) {
	ch := broker(t)
	q := unique("sluice.q.")
	queue(t, ch, q)
	trig := &flow.AMQPTrigger{Connection: connection(), Queue: q, Delivery: flow.Delivery{MaxInFlight: 1, Attempts: 1}}

	first := NewPool(nil)
	started := make(chan struct{}, 1)
	hang := make(chan struct{})
	defer close(hang)
	c1, _ := first.Start(context.Background(), trig, "test/a", func(context.Context, *flow.Message) (*flow.Response, error) {
		started <- struct{}{}
		<-hang
		return nil, errors.New("never")
	}, nil)
	if err := ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: []byte(`{"id":1}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(waitLong):
		t.Fatal("no first delivery")
	}
	// The consumer's connection goes away with the message unacked, as
	// when its runtime is killed.
	c1.mu.Lock()
	c1.ch.Close()
	c1.mu.Unlock()

	got := make(chan *flow.Message, 1)
	second := NewPool(nil)
	t.Cleanup(second.Close)
	c2, _ := second.Start(context.Background(), trig, "test/b", func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		got <- m
		return &flow.Response{Status: 200}, nil
	}, nil)
	select {
	case m := <-got:
		if m.Source["redelivered"] != true {
			t.Errorf("source %v, want redelivered", m.Source)
		}
	case <-time.After(waitLong):
		t.Fatal("not redelivered")
	}
	drain(t, c2)
}

func TestPublishUnroutableFails(t *testing.T) {
	p := NewPool(nil)
	defer p.Close()
	_, err := p.Publish(context.Background(), connection(), &flow.Outgoing{RoutingKey: unique("nobody."), Body: []byte("x")})
	if err == nil {
		t.Fatal("a message no queue takes was confirmed")
	}
	// The pool is still usable afterwards.
	ch := broker(t)
	q := unique("sluice.q.")
	queue(t, ch, q)
	if _, err := p.Publish(context.Background(), connection(), &flow.Outgoing{RoutingKey: q, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}

type lagCounters struct {
	counters
	lag atomic.Int64
}

func (c *lagCounters) Lag(n int64) { c.lag.Store(n) }

// TestQueueDepthIsTheLag: while the flow holds its one in-flight message,
// the messages behind it wait in the queue; the trigger reports them.
func TestQueueDepthIsTheLag(t *testing.T) {
	ch := broker(t)
	q := unique("sluice.test.depth.")
	queue(t, ch, q)
	for i := range 4 {
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: fmt.Appendf(nil, `{"n": %d}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	cnt := &lagCounters{}
	cnt.lag.Store(-1)
	p := NewPool(nil)
	p.DepthEvery = 20 * time.Millisecond
	defer p.Close()
	c, err := p.Start(context.Background(), &flow.AMQPTrigger{Connection: connection(), Queue: q, Delivery: flow.Delivery{MaxInFlight: 1, Attempts: 1}}, "test/depth",
		func(context.Context, *flow.Message) (*flow.Response, error) {
			<-release
			return nil, nil
		}, cnt)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a lag of 3 (one message in flight, prefetch 1)", func() bool { return cnt.lag.Load() == 3 })
	close(release)
	eventually(t, "a lag of 0 once everything ran", func() bool { return cnt.acked.Load() == 4 && cnt.lag.Load() == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c.Drain(ctx)
}
