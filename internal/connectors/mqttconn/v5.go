package mqttconn

// MQTT 5 through paho.golang's autopaho: the same delivery as 3.1.1
// (manual acknowledgements after the flow, a persistent session per
// clientId), with user properties as headers both ways and dead letters
// that keep the payload as it was, the error in user properties.

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/sluice-dev/sluice/internal/connectors"
	"github.com/sluice-dev/sluice/internal/flow"
)

// V5 says whether a policy asks for MQTT 5 (protocolVersion: 5).
func V5(c *flow.Connection) bool {
	switch v := c.Options["protocolVersion"].(type) {
	case int:
		return v == 5
	case float64:
		return v == 5
	case string:
		return v == "5"
	}
	return false
}

// sessionForever keeps a QoS 1/2 trigger's session on the broker as MQTT
// 3.1.1's persistent sessions are kept: until a clean start.
const sessionForever = 0xFFFFFFFF

// config5 is the autopaho configuration of a policy's client.
func (p *Pool) config5(c *flow.Connection, clientID string) (autopaho.ClientConfig, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return autopaho.ClientConfig{}, fmt.Errorf("mqtt: policy %s: url is not valid", c.Name)
	}
	policy := c.Name
	cfg := autopaho.ClientConfig{
		ServerUrls:     []*url.URL{u},
		TlsCfg:         c.TLSConfig(), // used by ssl://, mqtts://, wss:// URLs
		KeepAlive:      30,
		ConnectTimeout: 10 * time.Second,
		ReconnectBackoff: func(n int) time.Duration {
			return min(time.Duration(1<<min(n, 5))*time.Second, 30*time.Second)
		},
		OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) { p.state(policy, true) },
		OnConnectionDown: func() bool {
			p.log.Warn("mqtt connection lost; reconnecting", "policy", policy)
			p.state(policy, false)
			return true
		},
		OnConnectError: func(err error) {
			p.log.Warn("mqtt connect failed; retrying", "policy", policy, "err", err)
			p.state(policy, false)
		},
		ClientConfig: paho.ClientConfig{ClientID: clientID},
	}
	if c.Credential != nil {
		cfg.ConnectUsername = c.Credential.User
		cfg.ConnectPassword = []byte(c.Credential.Password.Reveal())
	}
	return cfg, nil
}

func (p *Pool) publisher5(c *flow.Connection) (*autopaho.ConnectionManager, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("mqtt: connections closed")
	}
	if cm := p.pubs5[c.Name]; cm != nil {
		return cm, nil
	}
	cfg, err := p.config5(c, shortID("sluice-p-"))
	if err != nil {
		return nil, err
	}
	cfg.CleanStartOnInitialConnection = true
	cm, err := autopaho.NewConnection(context.Background(), cfg) // retries in the background
	if err != nil {
		return nil, fmt.Errorf("mqtt: client (policy %s): %w", c.Name, err)
	}
	p.pubs5[c.Name] = cm
	return cm, nil
}

func (p *Pool) publish5(ctx context.Context, c *flow.Connection, out *flow.Outgoing) (map[string]any, error) {
	cm, err := p.publisher5(c)
	if err != nil {
		return nil, err
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		return nil, fmt.Errorf("mqtt: not connected (policy %s): %w", c.Name, err)
	}
	pb := &paho.Publish{Topic: out.Topic, QoS: byte(out.QoS), Retain: out.Retain, Payload: out.Body, Properties: properties(out.Headers)}
	resp, err := cm.Publish(ctx, pb)
	if err != nil {
		return nil, err
	}
	// 0x10 (no matching subscribers) is a success; 0x80 and above are
	// the broker refusing the message.
	if resp != nil && resp.ReasonCode >= 0x80 {
		return nil, fmt.Errorf("the broker refused the message (reason code 0x%02x)", resp.ReasonCode)
	}
	return map[string]any{"topic": out.Topic, "qos": out.QoS}, nil
}

// properties turns headers into user properties; content-type becomes
// the message's content type.
func properties(h map[string]string) *paho.PublishProperties {
	pp := &paho.PublishProperties{}
	for k, v := range h {
		if strings.EqualFold(k, "content-type") {
			pp.ContentType = v
			continue
		}
		pp.User = append(pp.User, paho.UserProperty{Key: k, Value: v})
	}
	return pp
}

func disconnect5(cm *autopaho.ConnectionManager) {
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	cm.Disconnect(ctx)
}

// start5 connects the trigger's MQTT 5 client; it subscribes after each
// connection (a session the broker kept has the subscription already;
// subscribing again is harmless).
func (c *Consumer) start5(clientID string) error {
	cfg, err := c.pool.config5(c.t.Connection, clientID)
	if err != nil {
		return err
	}
	cfg.CleanStartOnInitialConnection = c.t.QoS == 0
	if c.t.QoS > 0 {
		cfg.SessionExpiryInterval = sessionForever
	}
	cfg.EnableManualAcknowledgment = true
	cfg.SendAcksInterval = 20 * time.Millisecond
	// The broker sends at most maxInFlight unacknowledged messages.
	cfg.ConnectPacketBuilder = func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
		if cp.Properties == nil {
			cp.Properties = &paho.ConnectProperties{}
		}
		rm := uint16(min(c.t.MaxInFlight, 65535))
		cp.Properties.ReceiveMaximum = &rm
		return cp, nil
	}
	policy := c.t.Connection.Name
	cfg.OnConnectionUp = func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
		c.pool.state(policy, true)
		c.mu.Lock()
		stopped := c.stop
		c.mu.Unlock()
		if stopped {
			return
		}
		go func() {
			ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
			defer cancel()
			if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: c.filter(), QoS: byte(c.t.QoS)}}}); err != nil {
				c.log.Warn("mqtt subscribe failed", "err", err)
			}
		}()
	}
	cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
		c.onMessage5(pr)
		return true, nil
	}}
	cm, err := autopaho.NewConnection(c.ctx, cfg)
	if err != nil {
		return fmt.Errorf("mqtt: client (policy %s): %w", policy, err)
	}
	c.cm = cm
	return nil
}

func (c *Consumer) onMessage5(pr paho.PublishReceived) {
	m, cl := pr.Packet, pr.Client
	headers := map[string]string{}
	if m.Properties != nil {
		for _, up := range m.Properties.User {
			k := strings.ToLower(up.Key)
			if _, seen := headers[k]; !seen {
				headers[k] = up.Value
			}
		}
		if m.Properties.ContentType != "" {
			headers["content-type"] = m.Properties.ContentType
		}
	}
	src := map[string]any{"topic": m.Topic, "qos": int(m.QoS), "duplicate": m.Duplicate(), "retained": m.Retain,
		"messageId": int(m.PacketID), "protocolVersion": 5}
	c.run(func() {
		ack := func() {
			if m.QoS > 0 {
				if err := cl.Ack(m); err != nil {
					c.log.Warn("mqtt ack failed; the broker redelivers the message", "err", err)
				}
			}
		}
		c.handle(m.Payload, headers, src, ack, func(cause error, attempts int) error {
			h := map[string]string{}
			for k, v := range headers {
				h[k] = v
			}
			msg := connectors.DeadLetterError(cause)
			h["sluice-error"], h["sluice-flow"], h["sluice-attempts"], h["sluice-topic"] = msg, c.ref, strconv.Itoa(attempts), m.Topic
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := c.cm.Publish(ctx, &paho.Publish{Topic: c.t.DeadLetter, QoS: 1, Payload: m.Payload, Properties: properties(h)})
			if err == nil && resp != nil && resp.ReasonCode >= 0x80 {
				err = fmt.Errorf("the broker refused the dead letter (reason code 0x%02x)", resp.ReasonCode)
			}
			return err
		})
	})
}
