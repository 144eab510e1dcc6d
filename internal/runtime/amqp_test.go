package runtime_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestAMQPTriggerAndPublish: an HTTP flow publishes to a RabbitMQ queue
// (confirmed); a queue-triggered flow maps each message and publishes it
// on; a failing message lands in the dead-letter queue. The queues are
// declared by the trigger; credentials come from setdbparms.
func TestAMQPTriggerAndPublish(t *testing.T) {
	b := make([]byte, 4)
	rand.Read(b)
	q := "sluice.rt." + hex.EncodeToString(b)
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatalf("RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{q + ".out", q, q + ".dead"} {
		if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		defer ch.QueueDelete(name, false, false, false)
	}

	proj := writeProject(t, map[string]string{
		"sluice.yaml": "name: rabbit\n",
		"flows/in.yaml": `flow: take-order
trigger:
  http: {method: POST, path: /orders}
steps:
  - publish: {connection: broker, routingKey: ` + q + `, headers: {message-id: '${ .body.id }'}}
  - reply: {status: 202, body: .response}
`,
		"flows/work.yaml": `flow: work
trigger:
  amqp:
    connection: broker
    queue: ` + q + `
    declare: true
    maxInFlight: 4
    retry: {attempts: 2, backoff: 10ms}
    deadLetter: ` + q + `.dead
steps:
  - switch:
      - when: .body.poison
        steps: [{fail: 'order ${ .body.id } is poison'}]
  - publish:
      connection: broker
      routingKey: ` + q + `.out
      body: '{id: .body.id, queue: .source.queue, messageId: .source.messageId}'
`,
	})
	conf := configDir(t, map[string]string{
		"policyproject/Connections/broker.yaml": "type: amqp\nurl: amqp://127.0.0.1:5672/\ncredentials: rabbit\n",
		"setdbparms/creds.txt":                  "rabbit guest guest\n",
	})
	p := startRuntime(t, "--bar", buildBARInProcess(t, proj), "--config-dir", conf)

	for _, body := range []string{`{"id":"o-1"}`, `{"id":"o-2","poison":true}`} {
		a := do(t, "POST", p.url("/orders"), strings.NewReader(body), "content-type", "application/json")
		if a.status != 202 || string(a.body) != `{"exchange":"","routingKey":"`+q+`"}` {
			t.Fatalf("post: %d %s", a.status, a.body)
		}
	}
	var out, dead amqp.Delivery
	eventually(t, "the mapped message", func() bool {
		var ok bool
		out, ok, _ = ch.Get(q+".out", true)
		return ok
	})
	var got map[string]any
	json.Unmarshal(out.Body, &got)
	if got["id"] != "o-1" || got["queue"] != q || got["messageId"] != "o-1" {
		t.Fatalf("out %s", out.Body)
	}
	eventually(t, "the dead letter", func() bool {
		var ok bool
		dead, ok, _ = ch.Get(q+".dead", true)
		return ok
	})
	if !strings.Contains(dead.Headers["sluice-error"].(string), "order o-2 is poison") || dead.Headers["sluice-flow"] != "rabbit/work" {
		t.Fatalf("dead letter %s %v", dead.Body, dead.Headers)
	}
	// The counters are counted after the broker has the message (the dead
	// letter is published, then the original acked and counted), so the
	// test may see the dead letter a moment before its count.
	wants := []string{
		`sluice_trigger_messages_total{flow="work",outcome="acked",project="rabbit",trigger="amqp"} 1`,
		`sluice_trigger_messages_total{flow="work",outcome="dead_lettered",project="rabbit",trigger="amqp"} 1`,
		`sluice_trigger_messages_total{flow="work",outcome="retried",project="rabbit",trigger="amqp"} 1`,
		`sluice_connection_up{policy="broker"} 1`,
	}
	var metrics string
	counted := func() bool {
		metrics = string(get(t, p.adminURL("/metrics")).body)
		for _, want := range wants {
			if !strings.Contains(metrics, want) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(waitLong); !counted() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s\n%s", want, grepLines(metrics, "sluice_trigger", "sluice_connection"))
		}
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}
