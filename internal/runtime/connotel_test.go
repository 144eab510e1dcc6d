package runtime_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// A publish to NATS or RabbitMQ carries the publish step's traceparent in
// the message's headers, and a NATS or AMQP trigger continues it: the
// consumer's flow span is a child of the publish step's span, one trace
// from the HTTP caller through the broker to the flow that takes the
// message, and the consumer's log lines carry that trace_id.
func TestConnectorPublishesCarryTraceparentAndTriggersContinueIt(t *testing.T) {
	sink := newSpanSink(t)
	b := make([]byte, 4)
	rand.Read(b)
	id := hex.EncodeToString(b)
	subject, queue := "tp"+id+".in", "sluice.tp."+id

	nc, err := nats.Connect(natsURL())
	if err != nil {
		t.Fatalf("NATS at %s: %v", natsURL(), err)
	}
	defer nc.Close()
	watch, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatalf("RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// Declared here too, so the publish cannot come before the trigger's
	// declaration.
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(queue, false, false, false)

	proj := writeProject(t, map[string]string{
		"sluice.yaml": "name: tp\n",
		"flows/relay.yaml": `flow: relay
trigger:
  http: {method: POST, path: /relay}
steps:
  - publish: {connection: bus, subject: ` + subject + `}
  - publish: {connection: broker, routingKey: ` + queue + `}
  - reply: {status: 202}
`,
		"flows/from-nats.yaml": `flow: from-nats
trigger:
  nats: {connection: bus, subject: ` + subject + `}
steps:
  - log: 'nats message ${ .body.n }'
`,
		"flows/from-amqp.yaml": `flow: from-amqp
trigger:
  amqp: {connection: broker, queue: ` + queue + `, declare: true}
steps:
  - log: 'amqp message ${ .body.n }'
`,
	})
	conf := configDir(t, map[string]string{
		"policyproject/Connections/bus.yaml":    "type: nats\nurl: " + natsURL() + "\ncredentials: bus\n",
		"policyproject/Connections/broker.yaml": "type: amqp\nurl: amqp://127.0.0.1:5672/\ncredentials: rabbit\n",
		"setdbparms/creds.txt":                  "bus sluice nats-s3cret-pw\nrabbit guest guest\n",
	})
	p := startRuntime(t, "--bar", buildBARInProcess(t, proj), "--config-dir", conf)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	if a := do(t, "POST", p.url("/relay"), strings.NewReader(`{"n": 7}`), "content-type", "application/json",
		"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01"); a.status != 202 {
		t.Fatalf("relay: %d %s", a.status, a.body)
	}
	m, err := watch.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("the NATS message: %v", err)
	}
	if tp := m.Header.Get("traceparent"); !strings.HasPrefix(tp, "00-"+traceID+"-") {
		t.Errorf("the NATS message's traceparent is %q, want one in trace %s", tp, traceID)
	}

	eventually(t, "the publish steps' and the consumers' spans", func() bool {
		return sink.find("step publish#0") != nil && sink.find("step publish#1") != nil &&
			sink.find("flow tp/from-nats") != nil && sink.find("flow tp/from-amqp") != nil
	})
	for pub, run := range map[string]string{"step publish#0": "flow tp/from-nats", "step publish#1": "flow tp/from-amqp"} {
		ps, rs := sink.find(pub), sink.find(run)
		if hex.EncodeToString(ps.TraceId) != traceID || hex.EncodeToString(rs.TraceId) != traceID {
			t.Errorf("%s in trace %x, %s in %x; want both in the caller's %s", pub, ps.TraceId, run, rs.TraceId, traceID)
		}
		if string(rs.ParentSpanId) != string(ps.SpanId) {
			t.Errorf("%s's parent is %x, want %s's span %x", run, rs.ParentSpanId, pub, ps.SpanId)
		}
	}

	logged := func(msg string) map[string]any {
		sc := bufio.NewScanner(strings.NewReader(p.log.String()))
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil && l["msg"] == msg {
				return l
			}
		}
		return nil
	}
	for _, msg := range []string{"nats message 7", "amqp message 7"} {
		var l map[string]any
		eventually(t, "the log line "+msg, func() bool { l = logged(msg); return l != nil })
		if l["trace_id"] != traceID || l["request_id"] == nil || l["request_id"] == "" {
			t.Errorf("line %q: trace_id %v request_id %v, want trace %s and a request id", msg, l["trace_id"], l["request_id"], traceID)
		}
	}
}

// The same through Kafka record headers: a publish step's traceparent goes
// in the record, and a Kafka trigger's run continues it. (kfake, the
// in-process stand-in for a broker the Kafka tests use: no Kafka broker
// can run on this machine.)
func TestKafkaPublishCarriesTraceparentAndTriggerContinuesIt(t *testing.T) {
	sink := newSpanSink(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "traced"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	addr := kc.ListenAddrs()[0]
	proj := writeProject(t, map[string]string{
		"sluice.yaml": "name: tk\n",
		"flows/relay.yaml": `flow: relay
trigger:
  http: {method: POST, path: /relay}
steps:
  - publish: {connection: log, topic: traced}
  - reply: {status: 202}
`,
		"flows/from-kafka.yaml": `flow: from-kafka
trigger:
  kafka: {connection: log, topics: [traced], group: tracers}
steps:
  - log: 'kafka record ${ .body.n }'
`,
	})
	conf := configDir(t, map[string]string{"policyproject/Connections/log.yaml": "type: kafka\nurl: kafka://" + addr + "\n"})
	p := startRuntime(t, "--bar", buildBARInProcess(t, proj), "--config-dir", conf)
	const traceID = "8a3c60f7d188f8fa79d48a391a778fa6"
	if a := do(t, "POST", p.url("/relay"), strings.NewReader(`{"n": 9}`), "content-type", "application/json",
		"traceparent", "00-"+traceID+"-53995c3f42cd8ad8-01"); a.status != 202 {
		t.Fatalf("relay: %d %s", a.status, a.body)
	}
	eventually(t, "the publish step's and the consumer's spans", func() bool {
		return sink.find("step publish#0") != nil && sink.find("flow tk/from-kafka") != nil
	})
	ps, rs := sink.find("step publish#0"), sink.find("flow tk/from-kafka")
	if hex.EncodeToString(rs.TraceId) != traceID || string(rs.ParentSpanId) != string(ps.SpanId) {
		t.Errorf("the Kafka trigger's run is in trace %x under %x, want %s under the publish step's %x", rs.TraceId, rs.ParentSpanId, traceID, ps.SpanId)
	}
}

// MQTT 5 carries traceparent as a user property (MQTT 3.1.1 has nowhere
// to put it); an MQTT 5 trigger continues it. Against Mosquitto.
func TestMQTT5PublishCarriesTraceparentAndTriggerContinuesIt(t *testing.T) {
	sink := newSpanSink(t)
	b := make([]byte, 4)
	rand.Read(b)
	topic := "sluice/tp/" + hex.EncodeToString(b)
	proj := writeProject(t, map[string]string{
		"sluice.yaml": "name: tm\n",
		"flows/relay.yaml": `flow: relay
trigger:
  http: {method: POST, path: /relay}
steps:
  - publish: {connection: plant, topic: '` + topic + `', qos: 1}
  - reply: {status: 202}
`,
		"flows/from-mqtt.yaml": `flow: from-mqtt
trigger:
  mqtt: {connection: plant, topic: '` + topic + `', clientId: tp-` + hex.EncodeToString(b) + `}
steps:
  - log: 'mqtt message ${ .body.n }'
`,
	})
	conf := configDir(t, map[string]string{"policyproject/Connections/plant.yaml": "type: mqtt\nurl: tcp://127.0.0.1:1883\nprotocolVersion: 5\n"})
	p := startRuntime(t, "--bar", buildBARInProcess(t, proj), "--config-dir", conf)
	const traceID = "1c3e2a7d9b8f4e6a0d5c7b9a8e6f4d2c"
	// Again until the trigger's subscription is there.
	eventually(t, "the MQTT trigger's span", func() bool {
		if a := do(t, "POST", p.url("/relay"), strings.NewReader(`{"n": 5}`), "content-type", "application/json",
			"traceparent", "00-"+traceID+"-a2fb4a1d1a96d312-01"); a.status != 202 {
			t.Fatalf("relay: %d %s", a.status, a.body)
		}
		return sink.find("flow tm/from-mqtt") != nil
	})
	rs := sink.find("flow tm/from-mqtt")
	if hex.EncodeToString(rs.TraceId) != traceID {
		t.Fatalf("the MQTT trigger's run is in trace %x, want %s", rs.TraceId, traceID)
	}
	var parent string
	eventually(t, "the span the MQTT trigger's run continues", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for _, s := range sink.spans {
			if string(s.SpanId) == string(rs.ParentSpanId) {
				parent = s.Name
				return true
			}
		}
		return false
	})
	if parent != "step publish#0" {
		t.Errorf("the MQTT trigger's run is under %q, want the publish step", parent)
	}
}
