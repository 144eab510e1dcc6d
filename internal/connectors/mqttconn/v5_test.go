package mqttconn

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/flow"
)

func connection5() *flow.Connection {
	c := connection()
	c.Name = "broker5"
	c.Options["protocolVersion"] = 5
	return c
}

// TestMQTT5HeadersSharedQoS2AndDeadLetters: over MQTT 5 (Mosquitto), a
// QoS 2 publish carries its headers as user properties; two triggers of
// one shared group split the messages, each seeing the headers; a
// message whose flow keeps failing reaches the dead-letter topic with
// its payload unchanged and the error in user properties.
func TestMQTT5HeadersSharedQoS2AndDeadLetters(t *testing.T) {
	topic := unique("sluice/test5/")
	p := NewPool(nil)
	t.Cleanup(p.Close)
	type run struct {
		consumer string
		msg      *flow.Message
	}
	runs := make(chan run, 64)
	var cnt counters
	var consumers []*Consumer
	for _, name := range []string{"a", "b"} {
		c, err := p.Start(context.Background(), &flow.MQTTTrigger{Connection: connection5(), Topic: topic + "/in/+", QoS: 2, ClientID: unique("sluice-" + name + "-"), Group: "g",
			Delivery: flow.Delivery{MaxInFlight: 2, Attempts: 2, Backoff: 5 * time.Millisecond, DeadLetter: topic + "/dead"}}, "test/mqtt5",
			func(_ context.Context, m *flow.Message) (*flow.Response, error) {
				runs <- run{name, m}
				if m.Headers["kind"] == "poison" {
					return nil, errors.New("poison refused")
				}
				return nil, nil
			}, &cnt)
		if err != nil {
			t.Fatal(err)
		}
		connected(t, c)
		consumers = append(consumers, c)
	}
	// The test's own MQTT 5 subscriber on the dead-letter topic.
	dead := make(chan *flow.Message, 4)
	watch, err := p.Start(context.Background(), &flow.MQTTTrigger{Connection: connection5(), Topic: topic + "/dead", QoS: 0,
		Delivery: flow.Delivery{MaxInFlight: 1, Attempts: 1}}, "test/watch", func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		dead <- m
		return nil, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	connected(t, watch)

	const n = 20
	for i := range n {
		res, err := p.Publish(context.Background(), connection5(), &flow.Outgoing{Topic: topic + "/in/x", QoS: 2, Body: []byte(`{"n": 1}`),
			Headers: map[string]string{"Kind": "ok", "Seq": string(rune('a' + i)), "content-type": "application/json"}})
		if err != nil || res["qos"] != 2 {
			t.Fatalf("publish: %v %v", res, err)
		}
	}
	by := map[string]int{}
	for range n {
		r := receive(t, runs, "the runs")
		if r.msg.Headers["kind"] != "ok" || r.msg.Headers["content-type"] != "application/json" || r.msg.Source["qos"] != 2 || r.msg.Source["protocolVersion"] != 5 {
			t.Fatalf("message %+v %+v", r.msg.Headers, r.msg.Source)
		}
		by[r.consumer]++
	}
	if by["a"]+by["b"] != n || by["a"] == n || by["b"] == n {
		t.Errorf("the shared group did not split the messages: %v", by)
	}

	if _, err := p.Publish(context.Background(), connection5(), &flow.Outgoing{Topic: topic + "/in/x", QoS: 1, Body: []byte("bad"), Headers: map[string]string{"kind": "poison"}}); err != nil {
		t.Fatal(err)
	}
	dl := receive(t, dead, "the dead letter")
	if dl.Body != "bad" || dl.Headers["sluice-error"] != "poison refused" || dl.Headers["sluice-attempts"] != "2" ||
		dl.Headers["sluice-topic"] != topic+"/in/x" || dl.Headers["kind"] != "poison" {
		t.Fatalf("dead letter %+v %+v", dl.Body, dl.Headers)
	}
	deadline := time.Now().Add(waitLong)
	for cnt.acked.Load() != n || cnt.dead.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("acked %d dead %d", cnt.acked.Load(), cnt.dead.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range append(consumers, watch) {
		wg.Add(1)
		go func() { defer wg.Done(); c.Drain(ctx) }()
	}
	wg.Wait()
	for _, c := range consumers {
		cleanSession5(t, c.t.ClientID)
	}
}

// TestMQTT5UnackedMessageComesBack: an MQTT 5 trigger whose runtime goes
// away mid-flow never acknowledged its QoS 1 message; the next client
// with the same clientId gets it again from the session the broker kept.
func TestMQTT5UnackedMessageComesBack(t *testing.T) {
	topic := unique("sluice/test5/")
	id := unique("sluice-")
	trig := &flow.MQTTTrigger{Connection: connection5(), Topic: topic, QoS: 1, ClientID: id, Delivery: flow.Delivery{MaxInFlight: 1, Attempts: 1}}
	first := NewPool(nil)
	started := make(chan struct{}, 1)
	hang := make(chan struct{})
	defer close(hang)
	ctx1, die := context.WithCancel(context.Background())
	c1, err := first.Start(ctx1, trig, "test/a", func(context.Context, *flow.Message) (*flow.Response, error) {
		started <- struct{}{}
		<-hang
		return nil, errors.New("never")
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	connected(t, c1)
	p := NewPool(nil)
	t.Cleanup(p.Close)
	if _, err := p.Publish(context.Background(), connection5(), &flow.Outgoing{Topic: topic, QoS: 1, Body: []byte(`{"id":1}`)}); err != nil {
		t.Fatal(err)
	}
	receive(t, started, "the first delivery")
	die() // the connection ends without a PUBACK
	<-c1.cm.Done()

	got := make(chan *flow.Message, 1)
	second := NewPool(nil)
	c2, err := second.Start(context.Background(), trig, "test/b", func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		got <- m
		return nil, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := receive(t, got, "the redelivery")
	if m.Body.(map[string]any)["id"] == nil || m.Source["duplicate"] != true {
		t.Fatalf("redelivered %+v %+v", m.Body, m.Source)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c2.Drain(ctx)
	cleanSession5(t, id)
}

// cleanSession5 removes a test's persistent session from the broker.
func cleanSession5(t *testing.T, id string) {
	p := NewPool(nil)
	defer p.Close()
	c, err := p.Start(context.Background(), &flow.MQTTTrigger{Connection: connection5(), Topic: "sluice/none", QoS: 0, ClientID: id,
		Delivery: flow.Delivery{MaxInFlight: 1, Attempts: 1}}, "test/clean", func(context.Context, *flow.Message) (*flow.Response, error) { return nil, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	connected(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c.Drain(ctx)
}
