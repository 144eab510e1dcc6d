package flow

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// KafkaTrigger starts a flow on each record of Kafka topics, read as a
// member of a consumer group. A partition's records run one at a time,
// in offset order (Kafka's per-key ordering); MaxInFlight partitions run
// at once. Offsets are committed only after the flows of the records
// before them succeeded (or were dead-lettered).
type KafkaTrigger struct {
	Connection *Connection
	Topics     []string
	Group      string // the consumer group; its committed offsets say where a restarted runtime resumes
	// StartAtEnd makes a group with no committed offset start at the
	// end of each partition rather than at its earliest record.
	StartAtEnd bool
	// DeadLetter (in Delivery) names a topic.
	Delivery
}

func (c *compiler) kafkaTrigger(n *yaml.Node) *KafkaTrigger {
	m := c.l.mapping(c.file, n, "kafka trigger", "connection", "topics", "group", "startAt", "maxInFlight", "retry", "deadLetter")
	if m == nil {
		return nil
	}
	t := &KafkaTrigger{}
	// A dead-letter topic is not a NATS subject; read it apart.
	dl := m.get("deadLetter")
	delete(m.vals, "deadLetter")
	ok := c.delivery(m, &t.Delivery)
	if cn := m.get("connection"); cn == nil {
		c.errAt(n, "kafka trigger needs connection (a policy of type kafka)")
		ok = false
	} else if conn, cok := c.connection(cn, "kafka trigger", "kafka"); !cok {
		ok = false
	} else {
		t.Connection = conn
	}
	if tn := m.get("topics"); tn == nil {
		c.errAt(n, "kafka trigger needs topics (a list of topic names)")
		ok = false
	} else if tn.Kind != yaml.SequenceNode || len(tn.Content) == 0 {
		c.errAt(tn, "topics must be a non-empty list of topic names")
		ok = false
	} else {
		for _, e := range tn.Content {
			s, sok := c.l.str(c.file, e, "topic")
			if !sok {
				ok = false
				continue
			}
			if msg := checkKafkaTopic(s); msg != "" {
				c.errAt(e, "topic %q: %s", s, msg)
				ok = false
				continue
			}
			t.Topics = append(t.Topics, s)
		}
	}
	if gn := m.get("group"); gn == nil {
		c.errAt(n, "kafka trigger needs group (the consumer group whose committed offsets it resumes from)")
		ok = false
	} else if g, gok := c.l.str(c.file, gn, "group"); !gok {
		ok = false
	} else if !nameRE.MatchString(g) {
		c.errAt(gn, "group %q must be letters, digits, '.', '_', '-' (at most 64)", g)
		ok = false
	} else {
		t.Group = g
	}
	if sn := m.get("startAt"); sn != nil {
		s, sok := c.l.str(c.file, sn, "startAt")
		switch {
		case !sok:
			ok = false
		case s == "earliest":
		case s == "latest":
			t.StartAtEnd = true
		default:
			c.errAt(sn, "startAt must be earliest or latest, not %q", s)
			ok = false
		}
	}
	if dl != nil {
		if s, sok := c.l.str(c.file, dl, "deadLetter"); !sok {
			ok = false
		} else if msg := checkKafkaTopic(s); msg != "" {
			c.errAt(dl, "deadLetter %q: %s", s, msg)
			ok = false
		} else {
			t.DeadLetter = s
		}
	}
	if !ok {
		return nil
	}
	return t
}

// checkKafkaTopic enforces Kafka's topic names: 1 to 249 of
// [A-Za-z0-9._-], not "." or "..".
func checkKafkaTopic(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 249:
		return "longer than 249 characters"
	case s == "." || s == "..":
		return fmt.Sprintf("%q is not a topic name", s)
	case strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) >= 0:
		return "must be letters, digits, '.', '_', '-'"
	}
	return ""
}

// kafkaPublish reads the Kafka form of publish: topic, key, headers,
// body. Every Kafka publish waits for acks from all in-sync replicas.
func (c *compiler) kafkaPublish(s *publishStep, m *fieldMap, lbl string) bool {
	ok := true
	for _, k := range []string{"subject", "qos", "retain", "confirm"} {
		if vn := m.get(k); vn != nil {
			c.errAt(vn, "%s is not for Kafka publishes (topic, key, headers, body; always acknowledged by all in-sync replicas)", k)
			ok = false
		}
	}
	tn := m.get("topic")
	if s.topic = c.tmpl(tn, lbl+" topic"); s.topic == nil {
		ok = false
	} else if s.topic.konst {
		if msg := checkKafkaTopic(s.topic.s); msg != "" {
			c.errAt(tn, "topic %q: %s", s.topic.s, msg)
			ok = false
		}
	}
	if kn := m.get("key"); kn != nil {
		if s.key = c.tmpl(kn, lbl+" key"); s.key == nil {
			ok = false
		}
	}
	return ok
}
