// Package natsconn connects flows to NATS through nats.go: core
// subscriptions (in queue groups), JetStream durable consumers whose
// messages are acknowledged only after the flow succeeded, retried with
// backoff and dead-lettered after the last attempt, and the publish step
// (core, or JetStream with the stream's confirmation). One connection per
// policy is shared by the triggers and steps that name it; it reconnects
// by itself, forever, with backoff.
package natsconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/connectors"
	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/jqjson"
)

// Pool holds the NATS connections of one runtime, one per policy.
type Pool struct {
	log *slog.Logger
	// OnState is told when a policy's connection goes down or comes
	// back (nil: nobody is told).
	OnState func(policy string, up bool)

	mu     sync.RWMutex // read-locked on every publish: a lookup
	conns  map[string]*conn
	closed bool

	// answers holds a core publish's .response, {subject}, by subject,
	// for up to maxAnswers subjects: the same map for every publish to a
	// subject instead of a new one each time. Flows never change a value
	// they are given (jq values are immutable; .config is shared alike).
	answers  sync.Map
	nAnswers atomic.Int32
}

const maxAnswers = 1024

// answer is the .response of a core publish to subject.
func (p *Pool) answer(subject string) map[string]any {
	if a, ok := p.answers.Load(subject); ok {
		return a.(map[string]any)
	}
	a := map[string]any{"subject": subject}
	if p.nAnswers.Load() < maxAnswers {
		if prev, loaded := p.answers.LoadOrStore(subject, a); loaded {
			return prev.(map[string]any)
		}
		p.nAnswers.Add(1)
	}
	return a
}

type conn struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// NewPool returns an empty pool; connections open on first use.
func NewPool(log *slog.Logger) *Pool {
	if log == nil {
		log = slog.Default()
	}
	return &Pool{log: log, conns: map[string]*conn{}}
}

func (p *Pool) state(policy string, up bool) {
	if p.OnState != nil {
		p.OnState(policy, up)
	}
}

// get returns the policy's connection, opening it the first time. The
// connection is usable at once even when the server is down: nats.go
// keeps trying and buffers publishes meanwhile.
func (p *Pool) get(c *flow.Connection) (*conn, error) {
	p.mu.RLock()
	cn, closed := p.conns[c.Name], p.closed
	p.mu.RUnlock()
	if cn != nil && !closed {
		return cn, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("nats: connections closed")
	}
	if cn := p.conns[c.Name]; cn != nil {
		return cn, nil
	}
	name := "sluice"
	if v, ok := c.Options["name"].(string); ok && v != "" {
		name = v
	}
	policy := c.Name
	var lastErr atomic.Value // the last failed attempt's error text, logged once
	opts := []nats.Option{
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil && lastErr.Swap(err.Error()) != err.Error() {
				p.log.Warn("nats connect failed; retrying", "policy", policy, "err", err)
			}
		}),
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.ConnectHandler(func(*nats.Conn) { p.state(policy, true) }),
		nats.ReconnectHandler(func(*nats.Conn) {
			p.log.Info("nats reconnected", "policy", policy)
			p.state(policy, true)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				p.log.Warn("nats disconnected; reconnecting", "policy", policy, "err", err)
			}
			p.state(policy, false)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			p.log.Warn("nats error", "policy", policy, "subject", subj, "err", err)
		}),
	}
	if c.Credential != nil {
		opts = append(opts, nats.UserInfo(c.Credential.User, c.Credential.Password.Reveal()))
	}
	// Used when a URL is tls:// or the server requires TLS.
	opts = append(opts, func(o *nats.Options) error { o.TLSConfig = c.TLSConfig(); return nil })
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect (policy %s): %w", policy, err)
	}
	if !nc.IsConnected() {
		p.state(policy, false)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: jetstream (policy %s): %w", policy, err)
	}
	cn = &conn{nc: nc, js: js}
	p.conns[c.Name] = cn
	return cn, nil
}

// Close closes every connection, flushing what was published.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, cn := range p.conns {
		cn.nc.Flush()
		cn.nc.Close()
	}
	p.conns = map[string]*conn{}
}

// Publish sends one message. Without Confirm it is handed to the
// connection (which sends it, or buffers it while reconnecting); with
// Confirm the step waits until a stream has stored it.
func (p *Pool) Publish(ctx context.Context, c *flow.Connection, out *flow.Outgoing) (map[string]any, error) {
	cn, err := p.get(c)
	if err != nil {
		return nil, err
	}
	if !out.Confirm && len(out.Headers) == 0 {
		// The same bytes as PublishMsg, without a nats.Msg to allocate.
		if err := cn.nc.Publish(out.Subject, out.Body); err != nil {
			return nil, err
		}
		return p.answer(out.Subject), nil
	}
	m := &nats.Msg{Subject: out.Subject, Data: out.Body}
	if len(out.Headers) > 0 {
		m.Header = nats.Header{}
		for k, v := range out.Headers {
			// Flows lower-case header names; the server reads its own
			// (Nats-Msg-Id…) case-sensitively.
			if strings.HasPrefix(k, "nats-") {
				k = textproto.CanonicalMIMEHeaderKey(k)
			}
			m.Header.Set(k, v)
		}
	}
	if !out.Confirm {
		if err := cn.nc.PublishMsg(m); err != nil {
			return nil, err
		}
		return p.answer(out.Subject), nil
	}
	ack, err := cn.js.PublishMsg(ctx, m)
	if err != nil {
		return nil, err
	}
	return map[string]any{"subject": out.Subject, "stream": ack.Stream, "sequence": int(ack.Sequence), "duplicate": ack.Duplicate}, nil
}

// Consumer feeds one trigger's messages to its flow.
type Consumer struct {
	t   *flow.NATSTrigger
	ref string // project/flow, in logs and dead-letter headers
	h   connectors.Handler
	cnt connectors.Counters
	log *slog.Logger
	cn  *conn
	ctx context.Context

	core    *connectors.Workers[*nats.Msg]
	js      *connectors.Workers[jetstream.Msg]
	mu      sync.Mutex
	stopped bool
	stopCh  chan struct{}
	sub     *nats.Subscription
	cc      jetstream.ConsumeContext
}

// Start subscribes the trigger and returns at once. A JetStream consumer
// that cannot be set up yet (server down, stream missing) is retried in
// the background with backoff; handlers run under ctx.
func (p *Pool) Start(ctx context.Context, t *flow.NATSTrigger, ref string, h connectors.Handler, cnt connectors.Counters) (*Consumer, error) {
	cn, err := p.get(t.Connection)
	if err != nil {
		return nil, err
	}
	if cnt == nil {
		cnt = connectors.NopCounters{}
	}
	c := &Consumer{t: t, ref: ref, h: h, cnt: cnt, cn: cn, ctx: ctx,
		log: p.log.With("flow", ref, "subject", t.Subject), stopCh: make(chan struct{})}
	if t.Stream == "" {
		c.core = connectors.NewWorkers(t.MaxInFlight, ctx.Done(), c.handleCore)
		if c.sub, err = cn.nc.QueueSubscribe(t.Subject, t.Queue, c.onCore); err != nil {
			return nil, fmt.Errorf("nats: subscribe %s: %w", t.Subject, err)
		}
		// Messages wait here, not in the flow, while maxInFlight runs
		// are busy; past these limits the server drops them (core NATS).
		c.sub.SetPendingLimits(64*1024, 64<<20)
		return c, nil
	}
	c.js = connectors.NewWorkers(t.MaxInFlight, ctx.Done(), c.handleJetStream)
	go c.consumeJetStream()
	return c, nil
}

// consumeJetStream creates (or updates) the durable consumer and starts
// pulling, retrying with backoff until it works or the consumer stops.
func (c *Consumer) consumeJetStream() {
	wait := time.Second
	for {
		err := c.subscribeJetStream()
		if err == nil {
			return
		}
		c.log.Warn("cannot consume from JetStream yet; retrying", "stream", c.t.Stream, "consumer", c.t.Consumer, "err", err, "retryIn", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-c.stopCh:
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func (c *Consumer) subscribeJetStream() error {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	cons, err := c.cn.js.CreateOrUpdateConsumer(ctx, c.t.Stream, jetstream.ConsumerConfig{
		Durable:       c.t.Consumer,
		FilterSubject: c.t.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.t.AckWait,
		MaxAckPending: c.t.MaxInFlight,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	cc, err := cons.Consume(c.onJetStream,
		jetstream.PullMaxMessages(c.t.MaxInFlight),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			c.log.Warn("JetStream consume error", "stream", c.t.Stream, "consumer", c.t.Consumer, "err", err)
		}))
	if err != nil {
		return err
	}
	c.cc = cc
	c.log.Info("consuming", "stream", c.t.Stream, "consumer", c.t.Consumer, "maxInFlight", c.t.MaxInFlight)
	return nil
}

// Drain stops taking messages, lets the ones already received finish
// (and be acknowledged), and returns when they have or ctx ends.
func (c *Consumer) Drain(ctx context.Context) error {
	c.mu.Lock()
	if !c.stopped {
		c.stopped = true
		close(c.stopCh)
		if c.sub != nil {
			c.sub.Drain()
		}
		if c.cc != nil {
			c.cc.Drain()
		}
	}
	sub, cc := c.sub, c.cc
	c.mu.Unlock()
	if cc != nil {
		select {
		case <-cc.Closed():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for sub != nil && sub.IsValid() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The subscription has ended: no message is dispatched any more.
	done := make(chan struct{})
	go func() {
		if c.core != nil {
			c.core.Close()
		} else {
			c.js.Close()
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// onJetStream runs on the subscription's goroutine: it waits for a free
// worker. A message not handed over because the runtime stopped is not
// acknowledged: the server gives it again after ackWait.
func (c *Consumer) onJetStream(m jetstream.Msg) { c.js.Dispatch(m) }

func (c *Consumer) handleJetStream(m jetstream.Msg) {
	c.cnt.InFlight(1)
	defer c.cnt.InFlight(-1)
	c.cnt.Received()
	src := map[string]any{"stream": c.t.Stream, "consumer": c.t.Consumer, "delivered": 1}
	delivered := 1
	if meta, err := m.Metadata(); err == nil {
		delivered = int(meta.NumDelivered)
		src["delivered"] = delivered
		src["sequence"] = int(meta.Sequence.Stream)
		src["pending"] = int(meta.NumPending)
		connectors.ReportLag(c.cnt, int64(meta.NumPending))
		src["timestamp"] = meta.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	if delivered > c.t.Attempts {
		// Every earlier delivery ended without an outcome: a replica
		// died (or hung past ackWait) mid-flow, each time. Running it
		// again may kill this one too.
		c.giveUp(m, delivered, fmt.Errorf("delivered %d times without finishing (attempts: %d)", delivered, c.t.Attempts))
		return
	}
	_, err := c.h(c.ctx, message(m.Subject(), m.Headers(), m.Data(), src))
	if err == nil {
		if aerr := m.Ack(); aerr != nil {
			c.log.Warn("ack failed; the message will be redelivered", "err", aerr)
			return
		}
		c.cnt.Acked()
		return
	}
	if delivered < c.t.Attempts {
		wait := c.t.BackoffFor(delivered)
		c.log.Info("flow failed; message will be redelivered", "attempt", delivered, "retryIn", wait.String(), "err", err)
		if nerr := m.NakWithDelay(wait); nerr != nil {
			c.log.Warn("nak failed; the message will be redelivered after ackWait", "err", nerr)
		}
		c.cnt.Retried()
		return
	}
	c.giveUp(m, delivered, err)
}

// giveUp sends a message whose last attempt failed to the dead-letter
// subject — confirmed by its stream — and only then terminates it, so a
// message is never both unprocessed and gone.
func (c *Consumer) giveUp(m jetstream.Msg, delivered int, cause error) {
	if c.t.DeadLetter == "" {
		c.log.Error("flow failed on the last attempt; message dropped (the trigger has no deadLetter)", "attempts", delivered, "err", cause)
		c.term(m)
		c.cnt.DeadLettered()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dl := c.deadLetter(m.Subject(), m.Headers(), m.Data(), delivered, cause)
	if _, err := c.cn.js.PublishMsg(ctx, dl); err != nil {
		wait := c.t.BackoffFor(delivered)
		c.log.Error("dead-letter publish failed; the message will be redelivered", "deadLetter", c.t.DeadLetter, "err", err, "retryIn", wait.String())
		m.NakWithDelay(wait)
		c.cnt.Retried()
		return
	}
	c.log.Warn("flow failed on the last attempt; message dead-lettered", "attempts", delivered, "deadLetter", c.t.DeadLetter, "err", cause)
	c.term(m)
	c.cnt.DeadLettered()
}

// term tells the server never to redeliver m. (Not TermWithReason: servers
// before 2.10.4 ignore that form and redeliver.)
func (c *Consumer) term(m jetstream.Msg) {
	if err := m.Term(); err != nil {
		c.log.Warn("term failed; the message will be redelivered and given up again", "err", err)
	}
}

// onCore runs on the subscription's goroutine: it waits for a free
// worker, so messages wait in the client within the pending limits.
func (c *Consumer) onCore(m *nats.Msg) {
	if !c.core.Dispatch(m) {
		c.log.Error("runtime stopped before a message was processed; message lost (core NATS)")
	}
}

// handleCore runs the flow on a core NATS message, retrying in this
// process: core NATS has no acknowledgement, so a message whose runtime
// dies is gone (at most once).
func (c *Consumer) handleCore(m *nats.Msg) {
	c.cnt.InFlight(1)
	defer c.cnt.InFlight(-1)
	c.cnt.Received()
	for attempt := 1; ; attempt++ {
		// Sized for what message adds, so it is not grown.
		src := make(map[string]any, 5)
		src["delivered"] = attempt
		if c.t.Queue != "" {
			src["queue"] = c.t.Queue
		}
		resp, err := c.h(c.ctx, message(m.Subject, m.Header, m.Data, src))
		if err == nil {
			c.cnt.Acked()
			if m.Reply != "" && resp != nil {
				if data, perr := bodyBytes(resp.Body); perr == nil {
					c.cn.nc.Publish(m.Reply, data)
				}
			}
			return
		}
		if attempt >= c.t.Attempts {
			if c.t.DeadLetter != "" {
				if perr := c.cn.nc.PublishMsg(c.deadLetter(m.Subject, m.Header, m.Data, attempt, err)); perr != nil {
					c.log.Error("dead-letter publish failed; message lost", "deadLetter", c.t.DeadLetter, "err", perr)
				}
			} else {
				c.log.Error("flow failed on the last attempt; message dropped (the trigger has no deadLetter)", "attempts", attempt, "err", err)
			}
			c.cnt.DeadLettered()
			if m.Reply != "" {
				data, _ := bodyBytes(map[string]any{"error": err.Error()})
				c.cn.nc.Publish(m.Reply, data)
			}
			return
		}
		c.cnt.Retried()
		wait := c.t.BackoffFor(attempt)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			c.log.Error("runtime stopped while a message waited for its retry; message lost (core NATS)", "err", err)
			return
		}
	}
}

// Dead-letter headers: the original headers travel along, with these.
const (
	HeaderError    = "Sluice-Error"
	HeaderFlow     = "Sluice-Flow"
	HeaderAttempts = "Sluice-Attempts"
	HeaderSubject  = "Sluice-Subject"
)

func (c *Consumer) deadLetter(subject string, h nats.Header, data []byte, attempts int, cause error) *nats.Msg {
	out := &nats.Msg{Subject: c.t.DeadLetter, Data: data, Header: nats.Header{}}
	for k, v := range h {
		if strings.HasPrefix(k, "Nats-") {
			continue // Nats-Msg-Id would make the dead-letter stream drop it as a duplicate
		}
		out.Header[k] = v
	}
	msg := strings.Join(strings.Fields(cause.Error()), " ")
	if len(msg) > 1024 {
		msg = msg[:1024] + "…"
	}
	out.Header.Set(HeaderError, msg)
	out.Header.Set(HeaderFlow, c.ref)
	out.Header.Set(HeaderAttempts, strconv.Itoa(attempts))
	out.Header.Set(HeaderSubject, subject)
	return out
}

// message builds the flow's message: the payload as .body, headers by
// lower-case name (first value), and the source's metadata as .source.
func message(subject string, h nats.Header, data []byte, src map[string]any) *flow.Message {
	body, enc := connectors.Body(data)
	var headers map[string]string // none: the flow sees {} all the same
	if len(h) > 0 {
		headers = make(map[string]string, len(h))
	}
	for k, v := range h {
		if len(v) > 0 {
			headers[strings.ToLower(k)] = v[0]
		}
	}
	src["kind"] = "nats"
	src["subject"] = subject
	if enc == "base64" {
		src["encoding"] = "base64"
	}
	return &flow.Message{Body: body, Headers: headers, Source: src}
}

func bodyBytes(v any) ([]byte, error) {
	if s, ok := v.(string); ok {
		return []byte(s), nil
	}
	if data, ok := jqjson.Append(nil, v); ok {
		return data, nil
	}
	return json.Marshal(v)
}
