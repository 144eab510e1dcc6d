// Package kafkaconn connects flows to Kafka through franz-go: triggers
// that read topics as a member of a consumer group, running each
// partition's records in offset order and committing offsets only after
// the flows of the records before them succeeded (or were dead-lettered
// to a topic), and the publish step, which waits for every in-sync
// replica (acks=all, idempotent). franz-go reconnects by itself with
// backoff; a rebalance waits for the batch in progress to be committed.
package kafkaconn

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluice-dev/sluice/internal/connectors"
	"github.com/sluice-dev/sluice/internal/flow"
)

// Pool holds one runtime's producing clients (one per policy) and makes
// its consumers.
type Pool struct {
	log *slog.Logger
	// OnState is told when a policy's connection to a broker goes down
	// or comes back.
	OnState func(policy string, up bool)

	mu     sync.Mutex
	pubs   map[string]*kgo.Client
	closed bool
}

// NewPool returns an empty pool; clients open on first use.
func NewPool(log *slog.Logger) *Pool {
	if log == nil {
		log = slog.Default()
	}
	return &Pool{log: log, pubs: map[string]*kgo.Client{}}
}

func (p *Pool) state(policy string, up bool) {
	if p.OnState != nil {
		p.OnState(policy, up)
	}
}

// Options reads a kafka policy's client options and says what is wrong
// with them: the seed brokers of its URL (kafka://host:port, several
// separated by commas), clientId, sasl (plain, scram-sha-256,
// scram-sha-512; plain when credentials are given) and sessionTimeout.
func Options(c *flow.Connection) ([]kgo.Opt, error) {
	var seeds []string
	secure := false
	for i, one := range strings.Split(c.URL, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil || u.Host == "" || (i > 0 && secure != (u.Scheme == "kafkas")) {
			return nil, fmt.Errorf("kafka: policy %s: url is not a list of kafka://host:port (or kafkas://, all alike)", c.Name)
		}
		secure = u.Scheme == "kafkas"
		host := u.Host
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(host, "9092")
		}
		seeds = append(seeds, host)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID("sluice")}
	if secure {
		opts = append(opts, kgo.DialTLSConfig(c.TLSConfig()))
	}
	for k, v := range c.Options {
		s, _ := v.(string)
		switch k {
		case "clientId":
			if s == "" {
				return nil, fmt.Errorf("kafka: policy %s: clientId must be a non-empty string", c.Name)
			}
			opts = append(opts, kgo.ClientID(s))
		case "sessionTimeout":
			d, err := time.ParseDuration(s)
			if err != nil || d < time.Second {
				return nil, fmt.Errorf("kafka: policy %s: sessionTimeout must be a duration of at least 1s like 10s", c.Name)
			}
			opts = append(opts, kgo.SessionTimeout(d), kgo.HeartbeatInterval(max(d/10, 100*time.Millisecond)))
		case "sasl":
		default:
			return nil, fmt.Errorf("kafka: policy %s: unknown option %q", c.Name, k)
		}
	}
	mech, _ := c.Options["sasl"].(string)
	if _, set := c.Options["sasl"]; set && c.Credential == nil {
		return nil, fmt.Errorf("kafka: policy %s: sasl needs credentials (a setdbparms resource)", c.Name)
	}
	if c.Credential != nil {
		var m sasl.Mechanism
		user, pass := c.Credential.User, c.Credential.Password.Reveal()
		switch strings.ToLower(mech) {
		case "", "plain":
			m = plain.Auth{User: user, Pass: pass}.AsMechanism()
		case "scram-sha-256":
			m = scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
		case "scram-sha-512":
			m = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
		default:
			return nil, fmt.Errorf("kafka: policy %s: sasl must be plain, scram-sha-256 or scram-sha-512", c.Name)
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// connHook reports a policy's broker connections as they open and fail.
type connHook struct {
	p      *Pool
	policy string
}

func (h connHook) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	h.p.state(h.policy, err == nil)
}

var _ kgo.HookBrokerConnect = connHook{}

func (p *Pool) producer(c *flow.Connection) (*kgo.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("kafka: connections closed")
	}
	if cl := p.pubs[c.Name]; cl != nil {
		return cl, nil
	}
	opts, err := Options(c)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.WithHooks(connHook{p, c.Name}))...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client (policy %s): %w", c.Name, err)
	}
	p.pubs[c.Name] = cl
	return cl, nil
}

// Publish sends one record and waits until every in-sync replica has it.
func (p *Pool) Publish(ctx context.Context, c *flow.Connection, out *flow.Outgoing) (map[string]any, error) {
	cl, err := p.producer(c)
	if err != nil {
		return nil, err
	}
	r := &kgo.Record{Topic: out.Topic, Value: out.Body}
	if out.Key != nil {
		r.Key = []byte(*out.Key)
	}
	for k, v := range out.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	got, err := cl.ProduceSync(ctx, r).First()
	if err != nil {
		return nil, err
	}
	return map[string]any{"topic": got.Topic, "partition": int(got.Partition), "offset": int(got.Offset)}, nil
}

// Close closes every producing client, flushing what was produced.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, cl := range p.pubs {
		cl.Close()
	}
	p.pubs = map[string]*kgo.Client{}
}

// pollRecords bounds a batch: a rebalance waits for the batch in
// progress, so it stays small enough to finish within the group's
// rebalance timeout while still amortising the commit.
const pollRecords = 256

// Consumer feeds one trigger's records to its flow.
type Consumer struct {
	t   *flow.KafkaTrigger
	ref string
	h   connectors.Handler
	cnt connectors.Counters
	log *slog.Logger
	ctx context.Context // the runs' context
	cl  *kgo.Client

	poll     context.Context // cancelled by Drain: no new batch
	stopPoll context.CancelFunc
	done     chan struct{}
	// work runs a batch's partitions, each in order on one worker, at
	// most maxInFlight partitions at once.
	work *connectors.Workers[func()]

	mu  sync.Mutex
	lag map[string]int64 // topic/partition → records behind the high watermark
}

// Start joins the trigger's consumer group and consumes in the
// background; a broker that is down is retried by the client.
func (p *Pool) Start(ctx context.Context, t *flow.KafkaTrigger, ref string, h connectors.Handler, cnt connectors.Counters) (*Consumer, error) {
	opts, err := Options(t.Connection)
	if err != nil {
		return nil, err
	}
	if cnt == nil {
		cnt = connectors.NopCounters{}
	}
	reset := kgo.NewOffset().AtStart()
	if t.StartAtEnd {
		reset = kgo.NewOffset().AtEnd()
	}
	opts = append(opts,
		kgo.ConsumerGroup(t.Group),
		kgo.ConsumeTopics(t.Topics...),
		kgo.ConsumeResetOffset(reset),
		// Offsets are committed here, after the flows; a rebalance
		// waits until the batch in progress is committed, so no other
		// member starts a partition's records while this one runs them.
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.RequiredAcks(kgo.AllISRAcks()), // dead letters
		kgo.WithHooks(connHook{p, t.Connection.Name}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client (policy %s): %w", t.Connection.Name, err)
	}
	c := &Consumer{t: t, ref: ref, h: h, cnt: cnt, ctx: ctx, cl: cl, done: make(chan struct{}), lag: map[string]int64{},
		log: p.log.With("flow", ref, "topics", strings.Join(t.Topics, ","), "group", t.Group)}
	c.poll, c.stopPoll = context.WithCancel(ctx)
	c.work = connectors.NewWorkers(t.MaxInFlight, ctx.Done(), func(f func()) { f() })
	go c.run()
	return c, nil
}

func (c *Consumer) run() {
	defer close(c.done)
	defer c.cl.Close()
	defer c.work.Close()
	for {
		fs := c.cl.PollRecords(c.poll, pollRecords)
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(topic string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.log.Warn("kafka fetch error", "topic", topic, "partition", part, "err", err)
			}
		})
		c.batch(fs)
		c.cl.AllowRebalance()
		if c.poll.Err() != nil {
			return
		}
	}
}

// batch runs the flows of one poll's records — each partition's in
// order, MaxInFlight partitions at once — and commits what finished.
func (c *Consumer) batch(fs kgo.Fetches) {
	var parts []kgo.FetchTopicPartition
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			parts = append(parts, p)
		}
	})
	if len(parts) == 0 {
		return
	}
	last := make([]*kgo.Record, len(parts)) // the last record finished, per partition
	acked := make([]int, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		handed := c.work.Dispatch(func() {
			defer wg.Done()
			for _, r := range p.Records {
				// Draining: what has not started is left for the
				// group's next member (its offset is not committed).
				if c.poll.Err() != nil {
					return
				}
				ok, succeeded := c.handle(r)
				if !ok {
					return
				}
				last[i] = r
				if succeeded {
					acked[i]++
				}
			}
		})
		if !handed {
			wg.Done() // the runtime stopped: nothing of it is committed
		}
	}
	wg.Wait()
	var commit []*kgo.Record
	n := 0
	for i, r := range last {
		if r != nil {
			commit = append(commit, r)
			n += acked[i]
			c.setLag(parts[i].Topic, parts[i].Partition, parts[i].HighWatermark-(r.Offset+1))
		}
	}
	if len(commit) == 0 {
		return
	}
	connectors.ReportLag(c.cnt, c.Lag())
	// Not the runs' context: a drain still commits what finished.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.cl.CommitRecords(ctx, commit...); err != nil {
		c.log.Warn("offset commit failed; the batch's records will be delivered again", "err", err)
		return
	}
	for range n {
		c.cnt.Acked()
	}
}

func (c *Consumer) setLag(topic string, part int32, lag int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lag[topic+"/"+strconv.Itoa(int(part))] = max(lag, 0)
}

// Lag is how many records of the partitions this consumer last fetched
// lie past the last one it committed (by the high watermarks the
// brokers reported with the fetch).
func (c *Consumer) Lag() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, l := range c.lag {
		n += l
	}
	return n
}

// handle runs one record's flow with retries. ok is false when the
// runtime stopped before the record was finished (it must not be
// committed); succeeded is false when it was dead-lettered (or dropped).
func (c *Consumer) handle(r *kgo.Record) (ok, succeeded bool) {
	c.cnt.Received()
	c.cnt.InFlight(1)
	defer c.cnt.InFlight(-1)
	for attempt := 1; ; attempt++ {
		_, err := c.h(c.ctx, c.message(r, attempt))
		if err == nil {
			return true, true
		}
		if attempt >= c.t.Attempts {
			return c.giveUp(r, attempt, err), false
		}
		c.cnt.Retried()
		if !c.sleep(c.t.BackoffFor(attempt)) {
			return false, false
		}
	}
}

func (c *Consumer) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// Dead-letter headers: the original headers travel along, with these.
const (
	HeaderError     = "sluice-error"
	HeaderFlow      = "sluice-flow"
	HeaderAttempts  = "sluice-attempts"
	HeaderTopic     = "sluice-topic"
	HeaderPartition = "sluice-partition"
	HeaderOffset    = "sluice-offset"
)

// giveUp produces a record whose last attempt failed to the dead-letter
// topic (acknowledged by all in-sync replicas), retrying while it cannot:
// its offset is committed only once the dead letter is stored.
func (c *Consumer) giveUp(r *kgo.Record, attempts int, cause error) bool {
	if c.t.DeadLetter == "" {
		c.log.Error("flow failed on the last attempt; record dropped (the trigger has no deadLetter)", "attempts", attempts, "err", cause)
		c.cnt.DeadLettered()
		return true
	}
	msg := connectors.DeadLetterError(cause)
	dl := &kgo.Record{Topic: c.t.DeadLetter, Key: r.Key, Value: r.Value, Headers: append(append([]kgo.RecordHeader(nil), r.Headers...),
		kgo.RecordHeader{Key: HeaderError, Value: []byte(msg)},
		kgo.RecordHeader{Key: HeaderFlow, Value: []byte(c.ref)},
		kgo.RecordHeader{Key: HeaderAttempts, Value: []byte(strconv.Itoa(attempts))},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
	)}
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		err := c.cl.ProduceSync(ctx, dl).FirstErr()
		cancel()
		if err == nil {
			break
		}
		c.log.Error("dead-letter produce failed; retrying (the record's offset is not committed)", "deadLetter", c.t.DeadLetter, "err", err)
		if !c.sleep(c.t.BackoffFor(try)) {
			return false
		}
	}
	c.log.Warn("flow failed on the last attempt; record dead-lettered", "attempts", attempts, "deadLetter", c.t.DeadLetter, "err", cause)
	c.cnt.DeadLettered()
	return true
}

// message builds the flow's message: the value as .body, headers by
// lower-case name (the first of a repeated one), and the record's topic,
// partition, offset, key and timestamp as .source.
func (c *Consumer) message(r *kgo.Record, attempt int) *flow.Message {
	body, enc := connectors.Body(r.Value)
	headers := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		k := strings.ToLower(h.Key)
		if _, seen := headers[k]; !seen {
			headers[k] = string(h.Value)
		}
	}
	src := map[string]any{"kind": "kafka", "topic": r.Topic, "partition": int(r.Partition), "offset": int(r.Offset), // gojq takes int, not int64
		"group": c.t.Group, "timestamp": r.Timestamp.UTC().Format(time.RFC3339Nano), "delivered": attempt}
	if r.Key != nil {
		if utf8.Valid(r.Key) {
			src["key"] = string(r.Key)
		} else {
			src["key"], src["keyEncoding"] = base64.StdEncoding.EncodeToString(r.Key), "base64"
		}
	}
	if enc == "base64" {
		src["encoding"] = "base64"
	}
	return &flow.Message{Body: body, Headers: headers, Source: src}
}

// Drain stops fetching, lets the runs in flight finish, commits them and
// leaves the group (so the next member takes the partitions at once).
func (c *Consumer) Drain(ctx context.Context) error {
	c.stopPoll()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
