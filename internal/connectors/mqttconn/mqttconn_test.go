package mqttconn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluice-dev/sluice/internal/flow"
)

// These tests run against the machine's Mosquitto (SLUICE_TEST_MQTT,
// default tcp://127.0.0.1:1883), on topics of their own.

const waitLong = 60 * time.Second

func connection() *flow.Connection {
	u := os.Getenv("SLUICE_TEST_MQTT")
	if u == "" {
		u = "tcp://127.0.0.1:1883"
	}
	return &flow.Connection{Name: "broker", Type: "mqtt", URL: u, Options: map[string]any{}}
}

func unique(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// client is the test's own MQTT client.
func client(t *testing.T) mqtt.Client {
	t.Helper()
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(connection().URL).SetClientID(unique("test-")))
	if tok := cl.Connect(); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("Mosquitto at %s: %v", connection().URL, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	return cl
}

func subscribe(t *testing.T, cl mqtt.Client, topic string) <-chan mqtt.Message {
	ch := make(chan mqtt.Message, 16)
	if tok := cl.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { ch <- m }); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	return ch
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

type counters struct{ received, acked, retried, dead atomic.Int64 }

func (c *counters) Received()      { c.received.Add(1) }
func (c *counters) Acked()         { c.acked.Add(1) }
func (c *counters) Retried()       { c.retried.Add(1) }
func (c *counters) DeadLettered()  { c.dead.Add(1) }
func (c *counters) InFlight(d int) {}

func connected(t *testing.T, c *Consumer) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	if c.cm != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		if err := c.cm.AwaitConnection(ctx); err != nil {
			t.Fatal("consumer never connected")
		}
	}
	for c.cm == nil && !c.cl.IsConnectionOpen() {
		if time.Now().After(deadline) {
			t.Fatal("consumer never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the SUBSCRIBE follows the CONNACK
}

func TestTriggerAcksRetriesAndDeadLetters(t *testing.T) {
	cl := client(t)
	topic := unique("sluice/test/")
	dead := subscribe(t, cl, topic+"/dead")
	var cnt counters
	var mu sync.Mutex
	runs := map[string][]int{}
	p := NewPool(nil)
	t.Cleanup(p.Close)
	c, _ := p.Start(context.Background(), &flow.MQTTTrigger{Connection: connection(), Topic: topic + "/in/+", QoS: 1, ClientID: unique("sluice-"),
		Delivery: flow.Delivery{MaxInFlight: 2, Attempts: 2, Backoff: 5 * time.Millisecond, DeadLetter: topic + "/dead"}}, "test/mqtt",
		func(_ context.Context, m *flow.Message) (*flow.Response, error) {
			kind := m.Body.(map[string]any)["kind"].(string)
			mu.Lock()
			runs[kind] = append(runs[kind], m.Source["delivered"].(int))
			mu.Unlock()
			if kind == "poison" {
				return nil, errors.New("poison refused")
			}
			return &flow.Response{Status: 200}, nil
		}, &cnt)
	connected(t, c)
	for _, kind := range []string{"ok", "poison"} {
		if _, err := p.Publish(context.Background(), connection(), &flow.Outgoing{Topic: topic + "/in/" + kind, QoS: 1, Body: fmt.Appendf(nil, `{"kind":%q}`, kind)}); err != nil {
			t.Fatal(err)
		}
	}
	dl := receive(t, dead, "the dead letter")
	var env map[string]any
	json.Unmarshal(dl.Payload(), &env)
	if env["error"] != "poison refused" || env["topic"] != topic+"/in/poison" || env["payload"] != `{"kind":"poison"}` || env["flow"] != "test/mqtt" {
		t.Fatalf("dead letter %s", dl.Payload())
	}
	deadline := time.Now().Add(waitLong)
	for cnt.acked.Load() != 1 || cnt.dead.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("acked %d dead %d", cnt.acked.Load(), cnt.dead.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if fmt.Sprint(runs["ok"], runs["poison"]) != "[1] [1 2]" {
		t.Errorf("runs %v", runs)
	}
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestUnackedMessageComesBackToTheSession: a runtime that dies mid-flow
// never acknowledged its QoS 1 message; the next one with the same
// clientId gets it again from the broker.
func TestUnackedMessageComesBackToTheSession(t *testing.T) {
	topic := unique("sluice/test/")
	id := unique("sluice-")
	trig := &flow.MQTTTrigger{Connection: connection(), Topic: topic, QoS: 1, ClientID: id, Delivery: flow.Delivery{MaxInFlight: 1, Attempts: 1}}
	first := NewPool(nil)
	started := make(chan struct{}, 1)
	hang := make(chan struct{})
	defer close(hang)
	c1, _ := first.Start(context.Background(), trig, "test/a", func(context.Context, *flow.Message) (*flow.Response, error) {
		started <- struct{}{}
		<-hang
		return nil, errors.New("never")
	}, nil)
	connected(t, c1)
	p := NewPool(nil)
	t.Cleanup(p.Close)
	if _, err := p.Publish(context.Background(), connection(), &flow.Outgoing{Topic: topic, QoS: 1, Body: []byte(`{"id":1}`)}); err != nil {
		t.Fatal(err)
	}
	receive(t, started, "the first delivery")
	c1.cl.Disconnect(0) // gone without PUBACK, as when killed

	got := make(chan *flow.Message, 1)
	second := NewPool(nil)
	c2, _ := second.Start(context.Background(), trig, "test/b", func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		got <- m
		return &flow.Response{Status: 200}, nil
	}, nil)
	m := receive(t, got, "the redelivery")
	if m.Body.(map[string]any)["id"] == nil {
		t.Fatalf("redelivered %+v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c2.Drain(ctx)
	// The session is the test's own: remove it.
	clean := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(connection().URL).SetClientID(id).SetCleanSession(true))
	if tok := clean.Connect(); tok.WaitTimeout(waitLong) {
		clean.Disconnect(100)
	}
}
