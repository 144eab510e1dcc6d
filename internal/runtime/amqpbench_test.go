package runtime

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const benchAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"

// amqpBenchQueues declares prefix.in and prefix.out on the machine's
// RabbitMQ, deleted at the end of the benchmark.
func amqpBenchQueues(b *testing.B, prefix string) *amqp.Connection {
	b.Helper()
	conn, err := amqp.Dial(benchAMQPURL)
	if err != nil {
		b.Skip("no RabbitMQ:", err)
	}
	b.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{prefix + ".in", prefix + ".out"} {
		if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ch.QueueDelete(q, false, false, false) })
	}
	return conn
}

// amqpBenchRun publishes b.N messages to the queue prefix.in and waits
// until as many arrived on prefix.out: the consumer's cost per message
// (with this publisher's and receiver's around it, the same for either
// consumer), as process CPU per message.
func amqpBenchRun(b *testing.B, conn *amqp.Connection, prefix string) {
	b.Helper()
	pub, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	rc, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	deliveries, err := rc.Consume(prefix+".out", "", true, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	body := func(i int) []byte {
		data := strconv.AppendInt([]byte(`{"id":`), int64(i), 10)
		return append(data, `,"qty":3,"price":9.99,"t":123456}`...)
	}
	send := func(i int) {
		if err := pub.Publish("", prefix+".in", false, false, amqp.Publishing{Body: body(i), ContentType: "application/json"}); err != nil {
			b.Error(err)
		}
	}
	// One through first: the consumer is ready.
	send(-1)
	select {
	case <-deliveries:
	case <-time.After(30 * time.Second):
		b.Fatal("the consumer never answered")
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	go func() {
		for i := range b.N {
			send(i)
		}
	}()
	limit := time.After(120 * time.Second)
	for range b.N {
		select {
		case <-deliveries:
		case <-limit:
			b.Fatal("not every message came back")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// BenchmarkAMQPTrigger is bench/msgbench's AMQP flow in process against
// the machine's RabbitMQ: an amqp trigger (prefetch 64, ack after the
// flow), a map step, a confirmed publish. Compare with
// BenchmarkAMQPHandWritten.
func BenchmarkAMQPTrigger(b *testing.B) {
	prefix := benchPrefix()
	conn := amqpBenchQueues(b, prefix)
	rt := brokerRuntime(b, "trigger:\n  amqp: {connection: rabbit, queue: "+prefix+".in, maxInFlight: 64}\n"+
		"steps:\n  - map: '{id: .body.id, total: (.body.qty * .body.price), t: .body.t}'\n  - publish: {connection: rabbit, routingKey: "+prefix+".out}\n",
		map[string]string{
			"policyproject/Bench/rabbit.yaml": "type: amqp\nurl: amqp://127.0.0.1:5672/\ncredentials: rabbit\n",
			"setdbparms/creds.txt":            "rabbit guest guest\n",
		})
	startNATS(b, rt)
	amqpBenchRun(b, conn, prefix)
}

// BenchmarkAMQPHandWritten is bench/msgbench's AMQP baseline in process:
// one consumer with a prefetch of 64, encoding/json into typed structs,
// the same transform, a publish confirmed before the ack.
func BenchmarkAMQPHandWritten(b *testing.B) {
	prefix := benchPrefix()
	conn := amqpBenchQueues(b, prefix)
	cons, err := amqp.Dial(benchAMQPURL)
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	in, err := cons.Channel()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cons.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := in.Qos(64, 0, false); err != nil {
		b.Fatal(err)
	}
	if err := out.Confirm(false); err != nil {
		b.Fatal(err)
	}
	deliveries, err := in.Consume(prefix+".in", "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for d := range deliveries {
			var o benchOrder
			if json.Unmarshal(d.Body, &o) != nil {
				d.Nack(false, false)
				continue
			}
			body, _ := json.Marshal(benchPriced{ID: o.ID, Total: float64(o.Qty) * o.Price, T: o.T})
			dc, err := out.PublishWithDeferredConfirm("", prefix+".out", true, false,
				amqp.Publishing{Body: body, DeliveryMode: amqp.Persistent, ContentType: "application/json"})
			if err != nil || !dc.Wait() {
				d.Nack(false, true)
				continue
			}
			d.Ack(false)
		}
	}()
	amqpBenchRun(b, conn, prefix)
}
