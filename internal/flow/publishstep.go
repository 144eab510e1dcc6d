package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/jqjson"
)

// publishStep sends one message through a connection and puts what the
// server said in .response: NATS {subject} (and {stream, sequence} when a
// stream confirmed storing it); AMQP {exchange, routingKey} once the
// broker confirmed it; MQTT {topic, qos}; Kafka {topic, partition,
// offset} once every in-sync replica has it.
type publishStep struct {
	stepBase
	conn    *Connection
	subject *template
	// AMQP: exchange (literal, "" the default exchange) and routing key.
	amqp       bool
	exchange   string
	routingKey *template
	// MQTT: topic, qos, retain.
	mqtt   bool
	topic  *template
	qos    int
	retain bool
	// Kafka: topic and key (nil: no key).
	kafka   bool
	key     *template
	hdrKeys []string
	hdrVals []*template
	body    *expr // nil: .body
	confirm bool
	// input: a destination, header or body is computed, so the step
	// needs the jq input (a publish to a fixed subject of .body does not
	// make one).
	input bool
}

func (c *compiler) publishStep(b stepBase, n *yaml.Node) step {
	m := c.l.mapping(c.file, n, "publish", "connection", "subject", "exchange", "routingKey", "topic", "qos", "retain", "key", "headers", "body", "confirm")
	if m == nil {
		return nil
	}
	s := &publishStep{stepBase: b}
	ok := true
	s.amqp = m.get("exchange") != nil || m.get("routingKey") != nil
	s.mqtt = !s.amqp && m.get("topic") != nil
	want := []string{"nats"}
	switch {
	case s.amqp:
		want = []string{"amqp"}
	case s.mqtt:
		want = []string{"mqtt", "kafka"}
	}
	if !s.mqtt {
		for _, k := range []string{"qos", "retain", "key"} {
			if vn := m.get(k); vn != nil {
				c.errAt(vn, "%s is for MQTT publishes (topic)", k)
				ok = false
			}
		}
	}
	if cn := m.get("connection"); cn == nil {
		c.errAt(n, "publish needs connection (a policy of type nats, amqp, mqtt or kafka)")
		ok = false
	} else if conn, cok := c.connection(cn, b.lbl, want...); !cok {
		ok = false
	} else {
		s.conn = conn
	}
	// A topic is MQTT's or Kafka's, as the policy's type says; without
	// the configurations (validation alone) a key says Kafka.
	if s.mqtt && s.conn != nil && (s.conn.Type == "kafka" || (s.conn.Type == "" && m.get("key") != nil)) {
		s.mqtt, s.kafka = false, true
	}
	if s.kafka {
		ok = c.kafkaPublish(s, m, b.lbl) && ok
	} else if s.mqtt {
		if kn := m.get("key"); kn != nil {
			c.errAt(kn, "key is for Kafka publishes (a policy of type kafka)")
			ok = false
		}
		noHeaders := s.conn != nil && s.conn.Type == "mqtt" && !s.conn.mqtt5()
		for _, k := range []string{"subject", "headers", "confirm"} {
			if vn := m.get(k); vn != nil && (k != "headers" || noHeaders) {
				c.errAt(vn, "%s is not for MQTT 3.1.1 publishes (topic, qos, retain, body; headers with protocolVersion: 5)", k)
				ok = false
			}
		}
		s.qos = 1
		if s.topic = c.tmpl(m.get("topic"), b.lbl+" topic"); s.topic == nil {
			ok = false
		} else if s.topic.konst {
			if msg := checkTopic(s.topic.s, false); msg != "" {
				c.errAt(m.get("topic"), "topic %q: %s", s.topic.s, msg)
				ok = false
			}
		}
		if qn := m.get("qos"); qn != nil {
			v, vok := c.l.integer(c.file, qn, "qos", 0, 2)
			s.qos, ok = v, ok && vok
		}
		if rn := m.get("retain"); rn != nil {
			v, vok := c.l.boolean(c.file, rn, "retain")
			s.retain, ok = v, ok && vok
		}
	} else if s.amqp {
		if sn := m.get("subject"); sn != nil {
			c.errAt(sn, "subject is for NATS; an AMQP publish has exchange and routingKey")
			ok = false
		}
		if cn := m.get("confirm"); cn != nil {
			c.errAt(cn, "AMQP publishes are always confirmed by the broker")
			ok = false
		}
		if en := m.get("exchange"); en != nil {
			if v, vok := c.l.str(c.file, en, "exchange"); !vok {
				ok = false
			} else if v != "" && checkQueueName(v) != "" {
				c.errAt(en, "exchange %q: %s", v, checkQueueName(v))
				ok = false
			} else {
				s.exchange = v
			}
		}
		if rn := m.get("routingKey"); rn == nil {
			c.errAt(n, "an AMQP publish needs routingKey (the queue's name on the default exchange)")
			ok = false
		} else if s.routingKey = c.tmpl(rn, b.lbl+" routingKey"); s.routingKey == nil {
			ok = false
		}
	} else if sn := m.get("subject"); sn == nil {
		c.errAt(n, "publish needs subject (NATS), exchange and routingKey (AMQP) or topic (MQTT, Kafka)")
		ok = false
	} else if s.subject = c.tmpl(sn, b.lbl+" subject"); s.subject == nil {
		ok = false
	} else if s.subject.konst {
		if msg := checkSubject(s.subject.s, false); msg != "" {
			c.errAt(sn, "subject %q: %s", s.subject.s, msg)
			ok = false
		}
	}
	if hn := m.get("headers"); hn != nil {
		keys, vals, hok := c.headerTemplates(hn, b.lbl)
		s.hdrKeys, s.hdrVals, ok = keys, vals, ok && hok
	}
	if bn := m.get("body"); bn != nil {
		if s.body = c.jqExpr(bn, b.lbl+" body"); s.body == nil {
			ok = false
		}
	}
	if cn := m.get("confirm"); cn != nil {
		v, vok := c.l.boolean(c.file, cn, "confirm")
		s.confirm, ok = v, ok && vok
	}
	if !ok {
		return nil
	}
	s.input = s.body != nil || len(s.hdrKeys) > 0
	for _, t := range []*template{s.subject, s.topic, s.routingKey, s.key} {
		s.input = s.input || (t != nil && !t.konst)
	}
	return s
}

func (s *publishStep) run(ctx context.Context, x *execution, st *state) error {
	var in *jqInput // the templates that do not read it are constants
	if s.input {
		in = st.input(x.rt)
	}
	out := &Outgoing{Confirm: s.confirm}
	dest := ""
	if s.kafka {
		topic, err := s.topic.eval(ctx, in)
		if err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("topic: %w", err), false)
		}
		// A constant one was checked when the flow was loaded.
		if !s.topic.konst {
			if msg := checkKafkaTopic(topic); msg != "" {
				return x.stepError(ctx, s.lbl, 500, fmt.Errorf("topic %q: %s", topic, msg), false)
			}
		}
		if s.key != nil {
			k, err := s.key.eval(ctx, in)
			if err != nil {
				return x.stepError(ctx, s.lbl, 500, fmt.Errorf("key: %w", err), false)
			}
			out.Key = &k
		}
		out.Topic, out.Confirm, dest = topic, true, topic
	} else if s.mqtt {
		topic, err := s.topic.eval(ctx, in)
		if err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("topic: %w", err), false)
		}
		// A constant one was checked when the flow was loaded.
		if !s.topic.konst {
			if msg := checkTopic(topic, false); msg != "" {
				return x.stepError(ctx, s.lbl, 500, fmt.Errorf("topic %q: %s", topic, msg), false)
			}
		}
		out.Topic, out.QoS, out.Retain, out.Confirm, dest = topic, s.qos, s.retain, s.qos > 0, topic
	} else if s.amqp {
		key, err := s.routingKey.eval(ctx, in)
		if err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("routingKey: %w", err), false)
		}
		if len(key) > 255 {
			return x.stepError(ctx, s.lbl, 500, errors.New("routingKey longer than 255 bytes"), false)
		}
		out.Exchange, out.RoutingKey, out.Confirm = s.exchange, key, true
		dest = "exchange " + strconv.Quote(s.exchange) + " key " + key
	} else {
		subj, err := s.subject.eval(ctx, in)
		if err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("subject: %w", err), false)
		}
		// A constant one was checked when the flow was loaded.
		if !s.subject.konst {
			if msg := checkSubject(subj, false); msg != "" {
				return x.stepError(ctx, s.lbl, 500, fmt.Errorf("subject %q: %s", subj, msg), false)
			}
		}
		out.Subject, dest = subj, subj
	}
	var err error
	if len(s.hdrKeys) > 0 {
		out.Headers = make(map[string]string, len(s.hdrKeys))
		for i, k := range s.hdrKeys {
			v, err := s.hdrVals[i].eval(ctx, in)
			if err != nil {
				return x.stepError(ctx, s.lbl, 500, fmt.Errorf("header %s: %w", k, err), false)
			}
			out.Headers[k] = v
		}
	}
	body := st.body
	if s.body != nil {
		if body, err = s.body.eval(ctx, in); err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("body: %w", err), false)
		}
	}
	_, text := body.(string)
	out.JSON = body != nil && !text // null is sent as text, as ever
	if out.Body, err = payload(body); err != nil {
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("body: %w", err), false)
	}
	if x.rt.conns == nil {
		return x.stepError(ctx, s.lbl, 500, errors.New("no connectors in this runtime"), false)
	}
	resp, err := x.rt.conns.Publish(ctx, s.conn, out)
	if err != nil {
		return x.stepError(ctx, s.lbl, http.StatusBadGateway, fmt.Errorf("publish to %s: %w", dest, err), true)
	}
	st.response = resp
	return nil
}

// payload encodes a value for the wire: a string as its text, anything
// else as JSON — by jqjson, as the runtime's HTTP answers are (a
// published message's body through encoding/json's reflection was a
// good part of its cost); a value that is not a jq value through
// encoding/json.
func payload(v any) ([]byte, error) {
	if s, ok := v.(string); ok {
		return []byte(s), nil
	}
	// Most messages fit the first buffer; larger ones grow it.
	if data, ok := jqjson.Append(make([]byte, 0, 256), v); ok {
		return data, nil
	}
	return json.Marshal(v)
}
