package runtime_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// TestKafkaSurvivesKill9: a runtime killed with SIGKILL in the middle of
// a Kafka-triggered flow never committed the record's offset; the next
// runtime of the consumer group gets the record again and finishes it.
// A record whose flow keeps failing goes to the dead-letter topic with
// the error.
//
// No Kafka broker can run on this machine (no Java, nothing to install
// one from), so the runtimes talk over TCP to franz-go's in-process fake
// cluster, kfake, started by this test: a stand-in for Kafka, speaking its
// wire protocol (produce, fetch, consumer groups, commits, SASL).
func TestKafkaSurvivesKill9(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "orders", "orders-out", "orders-dead"),
		kfake.GroupMinSessionTimeout(time.Second), kfake.EnableSASL(), kfake.Superuser("PLAIN", "shop", "kafka-s3cret-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	addr := kc.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(plainAuth("shop", "kafka-s3cret-pw")),
		kgo.ConsumeTopics("orders-out", "orders-dead"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()

	// The backend hangs the first call: the runtime is killed while its
	// flow waits here.
	var calls atomic.Int32
	hit := make(chan struct{}, 4)
	hang := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit <- struct{}{}
		if calls.Add(1) == 1 {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}
	}))
	defer backend.Close()
	defer close(hang)

	proj := writeProject(t, map[string]string{
		"sluice.yaml": "name: shop\n",
		"flows/orders.yaml": `flow: orders
timeout: 3s
trigger:
  kafka:
    connection: log
    topics: [orders]
    group: writers
    retry: {attempts: 2, backoff: 50ms}
    deadLetter: orders-dead
steps:
  - switch:
      - when: .body.poison
        steps:
          - fail: 'order ${ .body.id } is poison'
  - http: {request: {url: '` + backend.URL + `/slow'}, timeout: 3s}
  - publish:
      connection: log
      topic: orders-out
      key: '${ .source.key }'
      headers: {from-offset: '${ .source.offset }'}
      body: '{id: .body.id, partition: .source.partition, offset: .source.offset}'
`,
	})
	bar := buildBARInProcess(t, proj)
	conf := configDir(t, map[string]string{
		// A short session: the killed runtime's partitions pass to the
		// next member 2s after its last heartbeat.
		"policyproject/Connections/log.yaml": "type: kafka\nurl: kafka://" + addr + "\ncredentials: log\nsessionTimeout: 2s\n",
		"setdbparms/creds.txt":               "log shop kafka-s3cret-pw\n",
	})
	first := startRuntime(t, "--bar", bar, "--config-dir", conf)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Key: []byte("c-1"), Value: []byte(`{"id": "o-1"}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	receive(t, hit, "the first run to reach the slow backend")
	first.signal(syscall.SIGKILL)
	first.wait()

	second := startRuntime(t, "--bar", bar, "--config-dir", conf)
	out := nextRecord(t, cl, "orders-out")
	var got map[string]any
	json.Unmarshal(out.Value, &got)
	if got["id"] != "o-1" || got["offset"] != float64(0) || string(out.Key) != "c-1" || len(out.Headers) != 1 || string(out.Headers[0].Value) != "0" {
		t.Fatalf("output %s key %s headers %v, want o-1 at offset 0", out.Value, out.Key, out.Headers)
	}

	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Key: []byte("c-1"), Value: []byte(`{"id": "o-2", "poison": true}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dl := nextRecord(t, cl, "orders-dead")
	hdr := map[string]string{}
	for _, h := range dl.Headers {
		hdr[h.Key] = string(h.Value)
	}
	if string(dl.Value) != `{"id": "o-2", "poison": true}` || !strings.Contains(hdr["sluice-error"], "order o-2 is poison") ||
		hdr["sluice-attempts"] != "2" || hdr["sluice-flow"] != "shop/orders" {
		t.Fatalf("dead letter %s %v", dl.Value, hdr)
	}

	// The dead letter is stored before the runtime counts it.
	var metrics string
	want := []string{
		`sluice_trigger_messages_total{flow="orders",outcome="acked",project="shop",trigger="kafka"} 1`,
		`sluice_trigger_messages_total{flow="orders",outcome="dead_lettered",project="shop",trigger="kafka"} 1`,
		`sluice_trigger_messages_total{flow="orders",outcome="retried",project="shop",trigger="kafka"} 1`,
		`sluice_trigger_in_flight{flow="orders",project="shop",trigger="kafka"} 0`,
		`sluice_trigger_lag{flow="orders",project="shop",trigger="kafka"} 0`,
		`sluice_connection_up{policy="log"} 1`,
	}
	eventually(t, "the metrics to count the dead letter", func() bool {
		metrics = string(get(t, second.adminURL("/metrics")).body)
		return strings.Contains(metrics, want[1]) && strings.Contains(metrics, want[3])
	})
	for _, want := range want {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s\n%s", want, grepLines(metrics, "sluice_trigger", "sluice_connection"))
		}
	}
	second.signal(syscall.SIGTERM)
	if code := second.wait(); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, second.log)
	}
	if strings.Contains(first.log.String()+second.log.String(), "kafka-s3cret-pw") {
		t.Error("a log shows the Kafka password")
	}
}

// nextRecord reads the next record of topic from the test's client.
func nextRecord(t *testing.T, cl *kgo.Client, topic string) *kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	for {
		fs := cl.PollRecords(ctx, 1)
		if ctx.Err() != nil {
			t.Fatalf("no record on %s", topic)
		}
		for _, r := range fs.Records() {
			if r.Topic == topic {
				return r
			}
			t.Fatalf("unexpected record on %s: %s", r.Topic, r.Value)
		}
	}
}

func plainAuth(user, pass string) sasl.Mechanism {
	return plain.Auth{User: user, Pass: pass}.AsMechanism()
}
