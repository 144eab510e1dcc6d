// Package mqttconn connects flows to MQTT brokers through Eclipse Paho —
// 3.1.1 by default, 5 (paho.golang's autopaho) when the policy says
// protocolVersion: 5: topic subscriptions (shared with $share/<group>/ when a group is
// set) whose QoS 1 and 2 messages are acknowledged only after the flow
// succeeded — in a persistent session, so a restarted runtime gets what
// it had not acknowledged — and the publish step; with MQTT 5, user
// properties are the messages' headers. Paho reconnects by itself with
// backoff.
package mqttconn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluice-dev/sluice/internal/connectors"
	"github.com/sluice-dev/sluice/internal/flow"
)

// Pool holds one runtime's publishing clients (one per policy) and makes
// its subscribers.
type Pool struct {
	log     *slog.Logger
	OnState func(policy string, up bool)

	mu     sync.Mutex
	pubs   map[string]*pubClient
	pubs5  map[string]*autopaho.ConnectionManager
	closed bool
}

// pubClient is a publishing client and the token of its first connect.
type pubClient struct {
	cl        mqtt.Client
	connected mqtt.Token
}

// NewPool returns an empty pool.
func NewPool(log *slog.Logger) *Pool {
	if log == nil {
		log = slog.Default()
	}
	return &Pool{log: log, pubs: map[string]*pubClient{}, pubs5: map[string]*autopaho.ConnectionManager{}}
}

func (p *Pool) state(policy string, up bool) {
	if p.OnState != nil {
		p.OnState(policy, up)
	}
}

func (p *Pool) options(c *flow.Connection, clientID string) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().AddBroker(c.URL).SetClientID(clientID).SetProtocolVersion(4).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(30 * time.Second).
		SetConnectTimeout(10 * time.Second).SetKeepAlive(30 * time.Second).
		SetTLSConfig(c.TLSConfig()) // used by ssl://, mqtts://, wss:// URLs
	if c.Credential != nil {
		o.SetUsername(c.Credential.User).SetPassword(c.Credential.Password.Reveal())
	}
	policy := c.Name
	o.SetOnConnectHandler(func(mqtt.Client) { p.state(policy, true) })
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		p.log.Warn("mqtt connection lost; reconnecting", "policy", policy, "err", err)
		p.state(policy, false)
	})
	return o
}

// wait waits for a token within ctx.
func wait(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Pool) publisher(c *flow.Connection) (*pubClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("mqtt: connections closed")
	}
	if cl := p.pubs[c.Name]; cl != nil {
		return cl, nil
	}
	cl := mqtt.NewClient(p.options(c, shortID("sluice-p-")).SetCleanSession(true))
	pc := &pubClient{cl: cl, connected: cl.Connect()} // retries in the background
	p.pubs[c.Name] = pc
	return pc, nil
}

// Publish sends one message; with QoS 1 or 2 it waits for the broker.
func (p *Pool) Publish(ctx context.Context, c *flow.Connection, out *flow.Outgoing) (map[string]any, error) {
	if V5(c) {
		return p.publish5(ctx, c, out)
	}
	pc, err := p.publisher(c)
	if err != nil {
		return nil, err
	}
	// Publishes wait for the first connection; after it, paho queues
	// them while it reconnects.
	if err := wait(ctx, pc.connected); err != nil {
		return nil, fmt.Errorf("mqtt: not connected (policy %s): %w", c.Name, err)
	}
	tok := pc.cl.Publish(out.Topic, byte(out.QoS), out.Retain, out.Body)
	if out.QoS > 0 {
		if err := wait(ctx, tok); err != nil {
			return nil, err
		}
	}
	return map[string]any{"topic": out.Topic, "qos": out.QoS}, nil
}

// Close disconnects every client.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, pc := range p.pubs {
		pc.cl.Disconnect(250)
	}
	p.pubs = map[string]*pubClient{}
	for _, cm := range p.pubs5 {
		disconnect5(cm)
	}
	p.pubs5 = map[string]*autopaho.ConnectionManager{}
}

// Consumer feeds one trigger's topic to its flow.
type Consumer struct {
	pool *Pool
	t    *flow.MQTTTrigger
	ref  string
	h    connectors.Handler
	cnt  connectors.Counters
	log  *slog.Logger
	ctx  context.Context
	cl   mqtt.Client                 // 3.1.1
	cm   *autopaho.ConnectionManager // 5
	work *connectors.Workers[func()]
	mu   sync.Mutex
	stop bool
}

func (c *Consumer) filter() string {
	if c.t.Group != "" {
		return "$share/" + c.t.Group + "/" + c.t.Topic
	}
	return c.t.Topic
}

// Start subscribes in the background (again after each reconnect).
func (p *Pool) Start(ctx context.Context, t *flow.MQTTTrigger, ref string, h connectors.Handler, cnt connectors.Counters) (*Consumer, error) {
	if cnt == nil {
		cnt = connectors.NopCounters{}
	}
	c := &Consumer{pool: p, t: t, ref: ref, h: h, cnt: cnt, ctx: ctx, log: p.log.With("flow", ref, "topic", t.Topic)}
	c.work = connectors.NewWorkers(t.MaxInFlight, ctx.Done(), func(f func()) {
		c.cnt.InFlight(1)
		defer c.cnt.InFlight(-1)
		f()
	})
	id := t.ClientID
	if id == "" {
		id = shortID("sluice-c-")
	}
	if V5(t.Connection) {
		return c, c.start5(id)
	}
	o := p.options(t.Connection, id).
		// A persistent session keeps unacknowledged QoS 1/2 messages
		// for this client id across a crash.
		SetCleanSession(t.QoS == 0).
		SetAutoAckDisabled(true).
		SetOrderMatters(false).
		SetResumeSubs(true)
	policy := t.Connection.Name
	o.SetOnConnectHandler(func(cl mqtt.Client) {
		p.state(policy, true)
		c.mu.Lock()
		stopped := c.stop
		c.mu.Unlock()
		if stopped {
			return
		}
		tok := cl.Subscribe(c.filter(), byte(t.QoS), c.onMessage)
		go func() {
			if tok.WaitTimeout(30*time.Second) && tok.Error() != nil {
				c.log.Warn("mqtt subscribe failed", "err", tok.Error())
			}
		}()
	})
	c.cl = mqtt.NewClient(o)
	c.cl.Connect()
	return c, nil
}

func (c *Consumer) onMessage(_ mqtt.Client, m mqtt.Message) {
	c.run(func() {
		src := map[string]any{"topic": m.Topic(), "qos": int(m.Qos()), "duplicate": m.Duplicate(),
			"retained": m.Retained(), "messageId": int(m.MessageID())}
		c.handle(m.Payload(), map[string]string{}, src, m.Ack, func(cause error, attempts int) error {
			// MQTT 3.1.1 has no headers: the error travels in a JSON
			// envelope.
			env, _ := json.Marshal(map[string]any{"error": cause.Error(), "flow": c.ref, "attempts": attempts, "topic": m.Topic(), "payload": string(m.Payload())})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return wait(ctx, c.cl.Publish(c.t.DeadLetter, 1, false, env))
		})
	})
}

// run hands one message's handling to a worker once one is free; the
// caller (the client's delivery) waits for it. A message not handed over
// (draining, or the runtime stopped) stays unacknowledged: the broker
// keeps it in the session for the next connection.
func (c *Consumer) run(f func()) { c.work.Dispatch(f) }

// handle runs the flow on one message with retries, acknowledging it
// only once the flow succeeded or the message was dead-lettered.
func (c *Consumer) handle(payload []byte, headers map[string]string, src map[string]any, ack func(), deadLetter func(cause error, attempts int) error) {
	c.cnt.Received()
	body, enc := connectors.Body(payload)
	src["kind"] = "mqtt"
	if enc == "base64" {
		src["encoding"] = "base64"
	}
	for attempt := 1; ; attempt++ {
		s := maps.Clone(src)
		s["delivered"] = attempt
		_, err := c.h(c.ctx, &flow.Message{Body: body, Headers: headers, Source: s})
		if err == nil {
			ack()
			c.cnt.Acked()
			return
		}
		if attempt >= c.t.Attempts {
			if c.t.DeadLetter != "" {
				if perr := deadLetter(err, attempt); perr != nil {
					// Not acknowledged: the broker redelivers it on the
					// session's next connection.
					c.log.Error("dead-letter publish failed; message left unacknowledged", "deadLetter", c.t.DeadLetter, "err", perr)
					c.cnt.Retried()
					return
				}
			} else {
				c.log.Error("flow failed on the last attempt; message dropped (the trigger has no deadLetter)", "attempts", attempt, "err", err)
			}
			ack()
			c.cnt.DeadLettered()
			return
		}
		c.cnt.Retried()
		t := time.NewTimer(c.t.BackoffFor(attempt))
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
	}
}

// Drain unsubscribes, lets the runs in flight finish and be
// acknowledged, and disconnects. The session (QoS 1/2) stays on the
// broker, holding what arrives meanwhile for the next runtime.
func (c *Consumer) Drain(ctx context.Context) error {
	c.mu.Lock()
	c.stop = true
	c.mu.Unlock()
	// No unsubscribe: a persistent session's subscription keeps
	// collecting messages for the next runtime. Stop taking new ones
	// (the client's deliveries wait, unacknowledged) and let the runs
	// in flight finish.
	var err error
	select {
	case <-c.work.Hold():
		c.work.Close() // nothing is handed over any more
	case <-ctx.Done():
		err = ctx.Err()
	}
	if c.cm != nil {
		disconnect5(c.cm)
	} else {
		c.cl.Disconnect(250)
	}
	return err
}

// shortID is a client id within MQTT 3.1.1's 23 characters, which some
// brokers enforce.
func shortID(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
