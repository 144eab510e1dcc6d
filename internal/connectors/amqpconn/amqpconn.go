// Package amqpconn connects flows to RabbitMQ (AMQP 0-9-1) through
// amqp091-go: queue consumers with a prefetch of maxInFlight whose
// messages are acknowledged only after the flow succeeded (retried in
// the runtime with backoff while unacknowledged, dead-lettered to a queue
// with publisher confirms, then acknowledged), and the publish step, which
// always waits for the broker's confirmation. Connections are redialled
// with backoff when they drop.
package amqpconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluice-dev/sluice/internal/connectors"
	"github.com/sluice-dev/sluice/internal/flow"
)

// Pool holds one runtime's publishing connections (one per policy) and
// makes its consumers.
type Pool struct {
	log *slog.Logger
	// OnState is told when a policy's connection goes down or comes back.
	OnState func(policy string, up bool)
	// DepthEvery is how often consumers ask their queue's depth (their
	// lag); 0: every 5s.
	DepthEvery time.Duration

	mu     sync.Mutex
	pubs   map[string]*publisher
	closed bool
}

// NewPool returns an empty pool; connections open on first use.
func NewPool(log *slog.Logger) *Pool {
	if log == nil {
		log = slog.Default()
	}
	return &Pool{log: log, pubs: map[string]*publisher{}}
}

func (p *Pool) state(policy string, up bool) {
	if p.OnState != nil {
		p.OnState(policy, up)
	}
}

// dial opens a connection with the policy's credentials (given to the
// client as fields, never in the URL).
func dial(c *flow.Connection) (*amqp.Connection, error) {
	cfg := amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US", Properties: amqp.Table{"connection_name": "sluice"},
		TLSClientConfig: c.TLSConfig()} // used by amqps:// URLs
	if v, ok := c.Options["name"].(string); ok && v != "" {
		cfg.Properties["connection_name"] = v
	}
	if c.Credential != nil {
		cfg.SASL = []amqp.Authentication{&amqp.PlainAuth{Username: c.Credential.User, Password: c.Credential.Password.Reveal()}}
	}
	conn, err := amqp.DialConfig(c.URL, cfg)
	if err != nil {
		// amqp091's errors do not repeat the URL's credentials, but the
		// URL is never shown here either.
		return nil, fmt.Errorf("amqp: connect (policy %s): %w", c.Name, err)
	}
	return conn, nil
}

// publisher is one connection with a channel in confirm mode.
// Publishes on it are one at a time, so a basic.return (unroutable)
// always belongs to the message being confirmed.
type publisher struct {
	// up is the connection's state as last told to OnState (0: never
	// told, 1 down, 2 up), so a publish tells it only when it changed.
	up      atomic.Int32
	mu      sync.Mutex
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
}

func (p *Pool) publisher(c *flow.Connection) (*publisher, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("amqp: connections closed")
	}
	if pub := p.pubs[c.Name]; pub != nil {
		return pub, nil
	}
	pub := &publisher{}
	p.pubs[c.Name] = pub
	return pub, nil
}

func (pub *publisher) open(c *flow.Connection) error {
	if pub.ch != nil && !pub.ch.IsClosed() {
		return nil
	}
	if pub.conn != nil {
		pub.conn.Close()
	}
	conn, err := dial(c)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("amqp: channel (policy %s): %w", c.Name, err)
	}
	pub.conn, pub.ch = conn, ch
	pub.returns = ch.NotifyReturn(make(chan amqp.Return, 1))
	return nil
}

// Publish sends one message and waits for the broker's confirmation; a
// message no queue takes (unroutable) is an error.
func (p *Pool) Publish(ctx context.Context, c *flow.Connection, out *flow.Outgoing) (map[string]any, error) {
	pub, err := p.publisher(c)
	if err != nil {
		return nil, err
	}
	msg := amqp.Publishing{Body: out.Body, DeliveryMode: amqp.Persistent, ContentType: "application/json"}
	if !out.JSON {
		msg.ContentType = contentType(out.Body)
	}
	if len(out.Headers) > 0 {
		msg.Headers = amqp.Table{}
		for k, v := range out.Headers {
			switch strings.ToLower(k) {
			case "content-type":
				msg.ContentType = v
			case "message-id":
				msg.MessageId = v
			case "correlation-id":
				msg.CorrelationId = v
			default:
				msg.Headers[k] = v
			}
		}
	}
	if err := pub.publish(ctx, c, out.Exchange, out.RoutingKey, msg); err != nil {
		pub.mu.Lock()
		up := pub.ch != nil && !pub.ch.IsClosed()
		pub.mu.Unlock()
		p.tell(pub, c.Name, up)
		return nil, err
	}
	p.tell(pub, c.Name, true)
	return map[string]any{"exchange": out.Exchange, "routingKey": out.RoutingKey}, nil
}

// tell gives OnState the publisher's connection state when it changed
// (the runtime's metric and /connections take a lock and a label
// lookup: not for every message).
func (p *Pool) tell(pub *publisher, policy string, up bool) {
	v := int32(1)
	if up {
		v = 2
	}
	if pub.up.Swap(v) != v {
		p.state(policy, up)
	}
}

func (pub *publisher) publish(ctx context.Context, c *flow.Connection, exchange, key string, msg amqp.Publishing) error {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if err := pub.open(c); err != nil {
		return err
	}
	dc, err := pub.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
	if err != nil {
		return err
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		// The confirmation may still come; the channel is no longer
		// trusted to pair returns with messages.
		pub.ch.Close()
		return err
	}
	select {
	case r := <-pub.returns:
		return fmt.Errorf("unroutable: %s (no queue is bound to exchange %q with key %q)", r.ReplyText, exchange, key)
	default:
	}
	if !acked {
		return errors.New("the broker refused the message (nack)")
	}
	return nil
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, pub := range p.pubs {
		pub.mu.Lock()
		if pub.conn != nil {
			pub.conn.Close()
		}
		pub.mu.Unlock()
	}
	p.pubs = map[string]*publisher{}
}

func contentType(b []byte) string {
	body, _ := connectors.Body(b)
	switch body.(type) {
	case nil, string:
		return "text/plain; charset=utf-8"
	}
	return "application/json"
}

// Consumer feeds one trigger's queue to its flow.
type Consumer struct {
	pool *Pool
	t    *flow.AMQPTrigger
	ref  string
	h    connectors.Handler
	cnt  connectors.Counters
	log  *slog.Logger
	ctx  context.Context

	work   *connectors.Workers[amqp.Delivery]
	stopCh chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	ch     *amqp.Channel
	tag    string
}

// Start consumes the trigger's queue in the background: it (re)connects
// with backoff until Drain, so a broker that is down delays messages but
// never stops the runtime.
func (p *Pool) Start(ctx context.Context, t *flow.AMQPTrigger, ref string, h connectors.Handler, cnt connectors.Counters) (*Consumer, error) {
	if cnt == nil {
		cnt = connectors.NopCounters{}
	}
	c := &Consumer{pool: p, t: t, ref: ref, h: h, cnt: cnt, ctx: ctx, log: p.log.With("flow", ref, "queue", t.Queue),
		stopCh: make(chan struct{}), done: make(chan struct{}), tag: "sluice-" + ref}
	// As many workers as the prefetch lets deliveries be unacknowledged.
	c.work = connectors.NewWorkers(t.MaxInFlight, ctx.Done(), c.handle)
	go c.loop()
	return c, nil
}

func (c *Consumer) stopped() bool {
	select {
	case <-c.stopCh:
		return true
	default:
		return false
	}
}

func (c *Consumer) loop() {
	defer close(c.done)
	defer c.work.Close()
	wait := time.Second
	for !c.stopped() && c.ctx.Err() == nil {
		conn, deliveries, err := c.subscribe()
		if err != nil {
			c.pool.state(c.t.Connection.Name, false)
			c.log.Warn("cannot consume yet; retrying", "err", err, "retryIn", wait.String())
			t := time.NewTimer(wait)
			select {
			case <-c.stopCh:
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(2*wait, 30*time.Second)
			continue
		}
		wait = time.Second
		c.pool.state(c.t.Connection.Name, true)
		c.log.Info("consuming", "maxInFlight", c.t.MaxInFlight)
		go c.watchDepth(conn)
		for d := range deliveries {
			if !c.work.Dispatch(d) {
				break // the runtime stopped: unacknowledged, redelivered
			}
		}
		// The deliveries end on a cancel (Drain) or a lost connection:
		// either way the runs in flight finish before the connection
		// closes, so their acks can still go out.
		<-c.work.Idle()
		conn.Close()
		if !c.stopped() {
			c.pool.state(c.t.Connection.Name, false)
			c.log.Warn("connection lost; reconnecting")
		}
	}
}

// watchDepth reports the queue's ready messages (those not yet delivered
// to any consumer) as the trigger's lag while conn lasts: a passive
// declare, on a channel of its own, every Pool.DepthEvery (default 5s).
func (c *Consumer) watchDepth(conn *amqp.Connection) {
	every := c.pool.DepthEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stopCh:
			return
		case <-t.C:
		}
		if conn.IsClosed() {
			return
		}
		ch, err := conn.Channel()
		if err != nil {
			continue
		}
		if q, err := ch.QueueDeclarePassive(c.t.Queue, true, false, false, false, nil); err == nil {
			connectors.ReportLag(c.cnt, int64(q.Messages))
		}
		ch.Close()
	}
}

func (c *Consumer) subscribe() (*amqp.Connection, <-chan amqp.Delivery, error) {
	conn, err := dial(c.t.Connection)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if err := ch.Qos(c.t.MaxInFlight, 0, false); err != nil {
		conn.Close()
		return nil, nil, err
	}
	if c.t.Declare {
		for _, q := range []string{c.t.Queue, c.t.DeadLetter} {
			if q == "" {
				continue
			}
			if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
				conn.Close()
				return nil, nil, fmt.Errorf("declare queue %s: %w", q, err)
			}
		}
	}
	deliveries, err := ch.Consume(c.t.Queue, c.tag, false, false, false, false, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	c.mu.Lock()
	c.ch = ch
	c.mu.Unlock()
	if c.stopped() {
		ch.Cancel(c.tag, false)
	}
	return conn, deliveries, nil
}

// Drain cancels the subscription, lets the runs in flight finish and be
// acknowledged, and returns when they have or ctx ends.
func (c *Consumer) Drain(ctx context.Context) error {
	c.mu.Lock()
	select {
	case <-c.stopCh:
	default:
		close(c.stopCh)
		if c.ch != nil {
			c.ch.Cancel(c.tag, false)
		}
	}
	c.mu.Unlock()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handle runs the flow on one delivery, retrying in this process while
// the message stays unacknowledged: if the runtime dies meanwhile, the
// broker redelivers it (redelivered: true) to another consumer.
func (c *Consumer) handle(d amqp.Delivery) {
	c.cnt.InFlight(1)
	defer c.cnt.InFlight(-1)
	c.cnt.Received()
	var headers map[string]string // none: the flow sees {} all the same
	if len(d.Headers) > 0 || d.ContentType != "" {
		headers = make(map[string]string, len(d.Headers)+1)
	}
	for k, v := range d.Headers {
		if s, ok := v.(string); ok {
			headers[strings.ToLower(k)] = s // as fmt.Sprint, without it
		} else {
			headers[strings.ToLower(k)] = fmt.Sprint(v)
		}
	}
	if d.ContentType != "" {
		headers["content-type"] = d.ContentType
	}
	body, enc := connectors.Body(d.Body)
	for attempt := 1; ; attempt++ {
		src := map[string]any{"kind": "amqp", "queue": c.t.Queue, "exchange": d.Exchange, "routingKey": d.RoutingKey,
			"redelivered": d.Redelivered, "delivered": attempt}
		if d.MessageId != "" {
			src["messageId"] = d.MessageId
		}
		if enc == "base64" {
			src["encoding"] = "base64"
		}
		_, err := c.h(c.ctx, &flow.Message{Body: body, Headers: headers, Source: src})
		if err == nil {
			if aerr := d.Ack(false); aerr != nil {
				c.log.Warn("ack failed; the broker will redeliver the message", "err", aerr)
				return
			}
			c.cnt.Acked()
			return
		}
		if attempt >= c.t.Attempts {
			c.giveUp(d, attempt, err)
			return
		}
		c.cnt.Retried()
		wait := c.t.BackoffFor(attempt)
		c.log.Info("flow failed; retrying", "attempt", attempt, "retryIn", wait.String(), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return // unacknowledged: redelivered by the broker
		}
	}
}

// Dead-letter headers, added to the original ones.
const (
	HeaderError    = "sluice-error"
	HeaderFlow     = "sluice-flow"
	HeaderAttempts = "sluice-attempts"
	HeaderQueue    = "sluice-queue"
)

// giveUp publishes the message to the dead-letter queue — confirmed —
// and only then acknowledges it; without a confirmation it goes back to
// the queue.
func (c *Consumer) giveUp(d amqp.Delivery, attempts int, cause error) {
	if c.t.DeadLetter == "" {
		c.log.Error("flow failed on the last attempt; message dropped (the trigger has no deadLetter)", "attempts", attempts, "err", cause)
		d.Ack(false)
		c.cnt.DeadLettered()
		return
	}
	msg := amqp.Publishing{Body: d.Body, ContentType: d.ContentType, MessageId: d.MessageId, DeliveryMode: amqp.Persistent, Headers: amqp.Table{}}
	for k, v := range d.Headers {
		msg.Headers[k] = v
	}
	text := strings.Join(strings.Fields(cause.Error()), " ")
	if len(text) > 1024 {
		text = text[:1024] + "…"
	}
	msg.Headers[HeaderError] = text
	msg.Headers[HeaderFlow] = c.ref
	msg.Headers[HeaderAttempts] = int32(attempts)
	msg.Headers[HeaderQueue] = c.t.Queue
	pub, err := c.pool.publisher(c.t.Connection)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = pub.publish(ctx, c.t.Connection, "", c.t.DeadLetter, msg)
		cancel()
	}
	if err != nil {
		c.log.Error("dead-letter publish failed; message requeued", "deadLetter", c.t.DeadLetter, "err", err)
		d.Nack(false, true)
		c.cnt.Retried()
		return
	}
	c.log.Warn("flow failed on the last attempt; message dead-lettered", "attempts", attempts, "deadLetter", c.t.DeadLetter, "err", cause)
	d.Ack(false)
	c.cnt.DeadLettered()
}
