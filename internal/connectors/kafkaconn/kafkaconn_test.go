package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/tlsconf"
)

// No Kafka broker runs on this machine (and no Java to run one), so these
// tests run against franz-go's in-process fake cluster, kfake: it speaks
// the Kafka wire protocol on loopback ports — produce, fetch, consumer
// groups, offset commits, SASL — but it is a fake, not Kafka.

const waitLong = 60 * time.Second

func cluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, "orders", "orders-dead"),
		kfake.GroupMinSessionTimeout(time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func connection(c *kfake.Cluster) *flow.Connection {
	var urls []string
	for _, a := range c.ListenAddrs() {
		urls = append(urls, "kafka://"+a)
	}
	return &flow.Connection{Name: "log", Type: "kafka", URL: strings.Join(urls, ","), Options: map[string]any{"sessionTimeout": "2s"}}
}

type counters struct{ received, acked, retried, dead atomic.Int64 }

func (c *counters) Received()      { c.received.Add(1) }
func (c *counters) Acked()         { c.acked.Add(1) }
func (c *counters) Retried()       { c.retried.Add(1) }
func (c *counters) DeadLettered()  { c.dead.Add(1) }
func (c *counters) InFlight(d int) {}

func trigger(conn *flow.Connection) *flow.KafkaTrigger {
	return &flow.KafkaTrigger{Connection: conn, Topics: []string{"orders"}, Group: "shop",
		Delivery: flow.Delivery{MaxInFlight: 3, Attempts: 2, Backoff: 10 * time.Millisecond, DeadLetter: "orders-dead"}}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPublishConsumeCommit: publishes land with their partition and
// offset; the trigger sees each record with its metadata, one
// partition's records in order; what it finished is committed, so the
// group's next member starts after it.
func TestPublishConsumeCommit(t *testing.T) {
	kc := cluster(t)
	conn := connection(kc)
	pool := NewPool(nil)
	defer pool.Close()
	ctx := context.Background()
	for i := range 30 {
		key := fmt.Sprintf("customer-%d", i%3)
		res, err := pool.Publish(ctx, conn, &flow.Outgoing{Topic: "orders", Key: &key, Headers: map[string]string{"X-Seq": fmt.Sprint(i)}, Body: fmt.Appendf(nil, `{"seq": %d}`, i)})
		if err != nil {
			t.Fatal(err)
		}
		if res["topic"] != "orders" {
			t.Fatalf("publish result %v", res)
		}
	}
	var mu sync.Mutex
	seen := map[string][]int{} // key → seqs in the order the flow saw them
	var first *flow.Message
	cnt := &counters{}
	h := func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = m
		}
		n, _ := m.Body.(map[string]any)["seq"].(int) // JSON numbers arrive as jq's ints
		k := m.Source["key"].(string)
		seen[k] = append(seen[k], n)
		return nil, nil
	}
	c, err := pool.Start(ctx, trigger(conn), "shop/orders", h, cnt)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "30 records acked", func() bool { return cnt.acked.Load() == 30 })
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for k, seqs := range seen {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				t.Errorf("key %s out of order: %v", k, seqs)
			}
		}
	}
	src := first.Source
	if src["kind"] != "kafka" || src["topic"] != "orders" || src["group"] != "shop" || src["delivered"] != 1 ||
		first.Headers["x-seq"] == "" || !strings.HasPrefix(src["key"].(string), "customer-") {
		t.Errorf("message %+v %+v", first.Headers, src)
	}
	if _, ok := src["partition"].(int); !ok {
		t.Errorf("partition %T", src["partition"])
	}
	if c.Lag() != 0 {
		t.Errorf("lag %d after everything was committed", c.Lag())
	}
	mu.Unlock()

	// The group resumes after its committed offsets: only the new record.
	key := "customer-9"
	if _, err := pool.Publish(ctx, conn, &flow.Outgoing{Topic: "orders", Key: &key, Body: []byte(`{"seq": 99}`)}); err != nil {
		t.Fatal(err)
	}
	got := make(chan *flow.Message, 64)
	c2, err := pool.Start(ctx, trigger(conn), "shop/orders", func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		got <- m
		return nil, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Drain(ctx)
	select {
	case m := <-got:
		if m.Source["key"] != "customer-9" {
			t.Fatalf("the next member got %v first: the commits were lost", m.Source)
		}
	case <-time.After(waitLong):
		t.Fatal("the new record never came")
	}
}

// TestUnfinishedRecordComesBack: a member that stops mid-flow (its run
// never finished) commits nothing for it; the group's next member gets
// the record again. A record whose flow keeps failing goes to the
// dead-letter topic with the error, then its offset is committed.
func TestUnfinishedRecordComesBack(t *testing.T) {
	kc := cluster(t)
	conn := connection(kc)
	pool := NewPool(nil)
	defer pool.Close()
	ctx := context.Background()
	key := "k"
	if _, err := pool.Publish(ctx, conn, &flow.Outgoing{Topic: "orders", Key: &key, Body: []byte(`{"id": "o-1"}`)}); err != nil {
		t.Fatal(err)
	}
	// The first member's run hangs until its runtime "dies" (the runs'
	// context ends) — the flow never succeeded.
	runCtx, die := context.WithCancel(ctx)
	started := make(chan struct{}, 1)
	c1, err := pool.Start(runCtx, trigger(conn), "shop/orders", func(ctx context.Context, m *flow.Message) (*flow.Response, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(waitLong):
		t.Fatal("the first member never got the record")
	}
	die()
	if err := c1.Drain(ctx); err != nil {
		t.Fatal(err)
	}

	got := make(chan *flow.Message, 4)
	cnt := &counters{}
	c2, err := pool.Start(ctx, trigger(conn), "shop/orders", func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		got <- m
		if m.Body.(map[string]any)["poison"] == true {
			return nil, errors.New("order is poison")
		}
		return nil, nil
	}, cnt)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Drain(ctx)
	select {
	case m := <-got:
		if m.Body.(map[string]any)["id"] != "o-1" {
			t.Fatalf("got %v", m.Body)
		}
	case <-time.After(waitLong):
		t.Fatal("the unfinished record was not delivered again")
	}

	if _, err := pool.Publish(ctx, conn, &flow.Outgoing{Topic: "orders", Key: &key, Body: []byte(`{"id": "o-2", "poison": true}`)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the poison record dead-lettered", func() bool { return cnt.dead.Load() == 1 })
	if cnt.retried.Load() != 1 {
		t.Errorf("retried %d, want 1 (attempts: 2)", cnt.retried.Load())
	}
	dl := readTopic(t, kc, "orders-dead", 1)[0]
	hdr := map[string]string{}
	for _, h := range dl.Headers {
		hdr[h.Key] = string(h.Value)
	}
	if string(dl.Value) != `{"id": "o-2", "poison": true}` || string(dl.Key) != "k" || hdr[HeaderError] != "order is poison" ||
		hdr[HeaderAttempts] != "2" || hdr[HeaderFlow] != "shop/orders" || hdr[HeaderTopic] != "orders" || hdr[HeaderOffset] != "1" {
		t.Fatalf("dead letter %s %v", dl.Value, hdr)
	}
}

// TestSASLCredentials: the policy's setdbparms credentials log in with
// SASL; wrong ones are refused, and the error does not show them.
func TestSASLCredentials(t *testing.T) {
	kc := cluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "svc", "kafka-s3cret"))
	conn := connection(kc)
	conn.Credential = &flow.Credential{User: "svc", Password: secret.New("kafka-s3cret")}
	pool := NewPool(nil)
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if _, err := pool.Publish(ctx, conn, &flow.Outgoing{Topic: "orders", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	bad := connection(kc)
	bad.Name = "bad"
	bad.Credential = &flow.Credential{User: "svc", Password: secret.New("wrong-s3cret")}
	short, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	_, err := pool.Publish(short, bad, &flow.Outgoing{Topic: "orders", Body: []byte("x")})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := Options(&flow.Connection{Name: "x", URL: "kafka://h:1", Options: map[string]any{"sasl": "gssapi"}, Credential: conn.Credential}); err == nil {
		t.Error("an unknown sasl mechanism was accepted")
	}
	if _, err := Options(&flow.Connection{Name: "x", URL: "kafka://h:1", Options: map[string]any{"sessionTimeout": "soon"}}); err == nil {
		t.Error("a malformed sessionTimeout was accepted")
	}
}

func readTopic(t *testing.T, kc *kfake.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// TestKafkaOverTLS: a kafkas:// policy verifies the brokers against the
// connection's trust (the runtime's trust store); brokers whose
// certificate it does not vouch for are refused.
func TestKafkaOverTLS(t *testing.T) {
	certFile, keyFile, err := tlsconf.SelfSigned(t.TempDir(), clock.Wall)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	kc := cluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pair}}))
	conn := connection(kc)
	conn.URL = strings.ReplaceAll(conn.URL, "kafka://", "kafkas://")
	pemData, _ := os.ReadFile(certFile)
	conn.RootCAs = x509.NewCertPool()
	conn.RootCAs.AppendCertsFromPEM(pemData)
	pool := NewPool(nil)
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if _, err := pool.Publish(ctx, conn, &flow.Outgoing{Topic: "orders", Body: []byte("x")}); err != nil {
		t.Fatalf("publish over TLS: %v", err)
	}
	untrusting := connection(kc)
	untrusting.Name, untrusting.URL = "untrusting", conn.URL
	short, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	if _, err := pool.Publish(short, untrusting, &flow.Outgoing{Topic: "orders", Body: []byte("x")}); err == nil {
		t.Fatal("a broker with an unknown certificate was trusted")
	}
}
