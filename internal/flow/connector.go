package flow

// This file is the connector contract: what the engine knows of message
// sources and of the steps that reach other servers (publish, sql). The
// engine parses and checks them at load — connection names against the
// policyproject configurations, credentials against setdbparms, URLs,
// subjects, statements and their parameters — and hands the work to a
// Connectors the runtime gives it. It never imports a client library.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Connection is a named connection definition (a policy of a
// policyproject configuration) as a trigger or step uses it.
type Connection struct {
	Name string // the policy's name
	Type string // nats, amqp, mqtt, kafka, postgres, mysql, redis, file
	// URL locates the server; it never carries a password (the loader
	// refuses one): the policy's credentials name a setdbparms entry.
	URL string
	// Options are the policy's other fields (pool sizes, client names…),
	// interpreted by the protocol's connector.
	Options map[string]any
	// Credential is the setdbparms entry named by the policy's
	// `credentials` field; nil when it names none.
	Credential *Credential
	// RootCAs are the CAs its TLS trusts: the runtime's trust store
	// (truststore configurations and the system roots), as for http
	// steps; nil: the system roots.
	RootCAs *x509.CertPool
}

// TLSConfig is the client TLS a connector uses when its URL asks for
// TLS: the runtime's trust store, TLS 1.2 or later.
func (c *Connection) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12}
}

// Outgoing is one message a publish step sends: to a NATS Subject, or
// to an AMQP Exchange with a RoutingKey.
type Outgoing struct {
	Subject    string
	Topic      string  // MQTT, Kafka
	Key        *string // Kafka record key; nil: none
	QoS        int     // MQTT: 0, 1 or 2
	Retain     bool    // MQTT
	Exchange   string  // AMQP; "" is the default exchange (routing key = queue)
	RoutingKey string  // AMQP
	Headers    map[string]string
	Body       []byte
	// JSON says Body is the JSON encoding of a value that was not a
	// string, which a connector need not parse to tell (AMQP's content
	// type); a string's text may be JSON too.
	JSON bool
	// Confirm asks the server to confirm the message is stored (a
	// JetStream publish) before the step succeeds.
	Confirm bool
}

// Statement is one SQL statement of a sql step with its parameters bound
// by position: Parts are the statement's text around the parameters
// (len(Parts) == len(Args)+1) and each Arg is a plain value (nil, bool,
// int64, float64, string; arrays and objects as JSON text). The connector
// joins the parts with its driver's placeholders; values never enter the
// statement's text.
type Statement struct {
	Exec  bool // exec: affected rows; otherwise query: rows
	Parts []string
	Args  []any
}

// Connectors carries the work of publish and sql steps to the protocol
// packages; the runtime gives one in Config.Connectors and `sluice flow
// test` one answering from fixtures.
type Connectors interface {
	// Publish sends msg through conn and returns what lands in
	// .response (e.g. {subject, stream, sequence}).
	Publish(ctx context.Context, conn *Connection, msg *Outgoing) (map[string]any, error)
	// SQL runs the statements through conn, all in one transaction when
	// tx is set, and returns one result per statement: {rows, count} for
	// a query, {rowsAffected} for an exec.
	SQL(ctx context.Context, conn *Connection, tx bool, stmts []Statement) ([]map[string]any, error)
	// Redis runs one command and returns its reply as a JSON value
	// (strings that hold JSON decoded).
	Redis(ctx context.Context, conn *Connection, cmd *RedisCommand) (any, error)
}

// Delivery is how a message-source trigger acknowledges: at most
// MaxInFlight messages of the flow at a time, a failed run retried
// Attempts times in all (waiting Backoff, doubled each time when
// Exponential), then sent to DeadLetter with the error.
type Delivery struct {
	MaxInFlight int
	Attempts    int
	Backoff     time.Duration
	Exponential bool
	DeadLetter  string // destination of messages whose last attempt failed; empty: none
}

// BackoffFor is the wait before attempt n+1 after attempt n (n ≥ 1) failed.
func (d Delivery) BackoffFor(n int) time.Duration {
	b := d.Backoff
	if d.Exponential {
		for i := 1; i < n && b < time.Hour; i++ {
			b *= 2
		}
	}
	return min(b, time.Hour)
}

// NATSTrigger starts a flow on each message of a NATS subject: a core
// subscription (in a queue group when Queue is set) or, with Stream, a
// JetStream durable consumer whose messages are acknowledged only after
// the flow succeeded.
type NATSTrigger struct {
	Connection *Connection
	Subject    string
	Queue      string // core NATS queue group
	Stream     string // JetStream stream; empty: core NATS
	Consumer   string // JetStream durable consumer name
	// AckWait is how long JetStream waits for an acknowledgement before
	// it redelivers (a replica that died mid-flow); longer than the
	// flow's timeout.
	AckWait time.Duration
	Delivery
}

// AMQPTrigger starts a flow on each message of a RabbitMQ (AMQP 0-9-1)
// queue; a message is acknowledged only after its flow succeeded.
type AMQPTrigger struct {
	Connection *Connection
	Queue      string
	// Declare declares the queue (durable) when it does not exist, and
	// the dead-letter queue with it.
	Declare bool
	// DeadLetter (in Delivery) names a queue, reached through the
	// default exchange.
	Delivery
}

func (c *compiler) amqpTrigger(n *yaml.Node) *AMQPTrigger {
	m := c.l.mapping(c.file, n, "amqp trigger", "connection", "queue", "declare", "maxInFlight", "retry", "deadLetter")
	if m == nil {
		return nil
	}
	t := &AMQPTrigger{}
	// A dead-letter queue name is not a NATS subject; read it apart.
	dl := m.get("deadLetter")
	delete(m.vals, "deadLetter")
	ok := c.delivery(m, &t.Delivery)
	if cn := m.get("connection"); cn == nil {
		c.errAt(n, "amqp trigger needs connection (a policy of type amqp)")
		ok = false
	} else if conn, cok := c.connection(cn, "amqp trigger", "amqp"); !cok {
		ok = false
	} else {
		t.Connection = conn
	}
	if qn := m.get("queue"); qn == nil {
		c.errAt(n, "amqp trigger needs queue")
		ok = false
	} else if q, qok := c.l.str(c.file, qn, "queue"); !qok {
		ok = false
	} else if msg := checkQueueName(q); msg != "" {
		c.errAt(qn, "queue %q: %s", q, msg)
		ok = false
	} else {
		t.Queue = q
	}
	if dl != nil {
		if q, qok := c.l.str(c.file, dl, "deadLetter"); !qok {
			ok = false
		} else if msg := checkQueueName(q); msg != "" {
			c.errAt(dl, "deadLetter %q: %s", q, msg)
			ok = false
		} else {
			t.DeadLetter = q
		}
	}
	if dn := m.get("declare"); dn != nil {
		v, vok := c.l.boolean(c.file, dn, "declare")
		t.Declare, ok = v, ok && vok
	}
	if !ok {
		return nil
	}
	return t
}

// MQTTTrigger starts a flow on each message of an MQTT (3.1.1) topic
// filter. With QoS 1 or 2 the trigger's session persists on the broker
// (ClientID) and a message is acknowledged only after its flow succeeded.
type MQTTTrigger struct {
	Connection *Connection
	Topic      string // a topic filter (+ and # wildcards)
	QoS        int
	// Group shares the subscription: the runtimes of one group each get
	// a part of the messages ($share/<group>/<topic>).
	Group string
	// ClientID names the broker session; required with QoS 1 and 2, so
	// a restarted runtime gets what it had not acknowledged.
	ClientID string
	Delivery
}

func (c *compiler) mqttTrigger(n *yaml.Node) *MQTTTrigger {
	m := c.l.mapping(c.file, n, "mqtt trigger", "connection", "topic", "qos", "group", "clientId", "maxInFlight", "retry", "deadLetter")
	if m == nil {
		return nil
	}
	t := &MQTTTrigger{QoS: 1}
	dl := m.get("deadLetter")
	delete(m.vals, "deadLetter")
	ok := c.delivery(m, &t.Delivery)
	if cn := m.get("connection"); cn == nil {
		c.errAt(n, "mqtt trigger needs connection (a policy of type mqtt)")
		ok = false
	} else if conn, cok := c.connection(cn, "mqtt trigger", "mqtt"); !cok {
		ok = false
	} else {
		t.Connection = conn
	}
	if tn := m.get("topic"); tn == nil {
		c.errAt(n, "mqtt trigger needs topic")
		ok = false
	} else if s, sok := c.l.str(c.file, tn, "topic"); !sok {
		ok = false
	} else if msg := checkTopic(s, true); msg != "" {
		c.errAt(tn, "topic %q: %s", s, msg)
		ok = false
	} else {
		t.Topic = s
	}
	if dl != nil {
		if s, sok := c.l.str(c.file, dl, "deadLetter"); !sok {
			ok = false
		} else if msg := checkTopic(s, false); msg != "" {
			c.errAt(dl, "deadLetter %q: %s", s, msg)
			ok = false
		} else {
			t.DeadLetter = s
		}
	}
	if qn := m.get("qos"); qn != nil {
		v, vok := c.l.integer(c.file, qn, "qos", 0, 2)
		t.QoS, ok = v, ok && vok
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"group", &t.Group}, {"clientId", &t.ClientID}} {
		if vn := m.get(f.key); vn != nil {
			if v, vok := c.l.str(c.file, vn, f.key); vok {
				if !nameRE.MatchString(v) {
					c.errAt(vn, "%s %q must be letters, digits, '.', '_', '-' (at most 64)", f.key, v)
					ok = false
				}
				*f.dst = v
			}
		}
	}
	if t.QoS > 0 && t.ClientID == "" && ok {
		c.errAt(n, "an mqtt trigger with qos %d needs clientId (its session on the broker keeps what was not acknowledged)", t.QoS)
		ok = false
	}
	if !ok {
		return nil
	}
	return t
}

// checkTopic enforces MQTT topic syntax: + and # only as whole levels,
// # last; none at all in a topic one publishes to.
func checkTopic(s string, filter bool) string {
	if s == "" {
		return "must not be empty"
	}
	if strings.HasPrefix(s, "$") {
		return "topics starting with $ belong to the broker"
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		switch {
		case l == "+" || (l == "#" && i == len(levels)-1):
			if !filter {
				return "must not contain wildcards"
			}
		case strings.ContainsAny(l, "+#"):
			return "wildcards must be whole levels, # only the last"
		}
	}
	return ""
}

// FileTrigger starts a flow on each file matching Glob in the directory
// of a policy of type file; each file is claimed by an atomic rename, and
// moved to done/ or failed/ when its flow ends.
type FileTrigger struct {
	Connection *Connection
	Glob       string        // e.g. *.json (path.Match syntax, no directories)
	Poll       time.Duration // how often the directory is listed
	Delivery
}

func (c *compiler) fileTrigger(n *yaml.Node) *FileTrigger {
	m := c.l.mapping(c.file, n, "file trigger", "connection", "glob", "poll", "maxInFlight", "retry")
	if m == nil {
		return nil
	}
	t := &FileTrigger{Glob: "*", Poll: time.Second}
	ok := c.delivery(m, &t.Delivery)
	if cn := m.get("connection"); cn == nil {
		c.errAt(n, "file trigger needs connection (a policy of type file naming the directory)")
		ok = false
	} else if conn, cok := c.connection(cn, "file trigger", "file"); !cok {
		ok = false
	} else {
		t.Connection = conn
	}
	if gn := m.get("glob"); gn != nil {
		if g, gok := c.l.str(c.file, gn, "glob"); !gok {
			ok = false
		} else if _, err := path.Match(g, "x"); err != nil || g == "" || strings.Contains(g, "/") {
			c.errAt(gn, "glob %q must be a file name pattern like *.json", g)
			ok = false
		} else {
			t.Glob = g
		}
	}
	if pn := m.get("poll"); pn != nil {
		d, dok := c.l.duration(c.file, pn, "poll")
		if dok && d < 10*time.Millisecond {
			c.errAt(pn, "poll must be at least 10ms")
			dok = false
		}
		t.Poll, ok = d, ok && dok
	}
	if !ok {
		return nil
	}
	return t
}

// checkQueueName: AMQP names are at most 255 bytes; "amq." is reserved.
func checkQueueName(q string) string {
	switch {
	case q == "":
		return "must not be empty"
	case len(q) > 255:
		return "longer than 255 bytes"
	case strings.HasPrefix(q, "amq."):
		return "names starting with amq. are reserved by the broker"
	case strings.ContainsAny(q, " \t\r\n"):
		return "must not contain white space"
	}
	return ""
}

// Defaults of message-source triggers.
const (
	defaultMaxInFlight = 1
	maxMaxInFlight     = 4096
	defaultAttempts    = 3
	maxDeliveryTries   = 100
	defaultRetryWait   = time.Second
)

// connection resolves `connection: name` against the policyproject
// configurations; without a Config (validation only) the name is kept
// unresolved. types are the policy types the caller accepts.
func (c *compiler) connection(n *yaml.Node, what string, types ...string) (*Connection, bool) {
	name, ok := c.l.str(c.file, n, what+" connection")
	if !ok {
		return nil, false
	}
	if name == "" {
		c.errAt(n, "%s connection must name a policy", what)
		return nil, false
	}
	conn := &Connection{Name: name}
	if c.l.cfg == nil {
		return conn, true
	}
	def, found := c.l.cfg.Policies[name]
	if !found {
		c.errAt(n, "%s: no policy named %q in the policyproject configurations", what, name)
		return nil, false
	}
	if msg := conn.resolve(def, c.l.cfg.Credentials, types); msg != "" {
		c.errAt(n, "%s: policy %q: %s", what, name, msg)
		return nil, false
	}
	conn.RootCAs = c.l.cfg.RootCAs
	return conn, true
}

// schemes are the URL schemes of each connection type.
var schemes = map[string][]string{
	"nats":     {"nats", "tls"},
	"postgres": {"postgres", "postgresql"},
	"mysql":    {"mysql"},
	"amqp":     {"amqp", "amqps"},
	"redis":    {"redis", "rediss"},
	"mqtt":     {"mqtt", "tcp", "ssl", "mqtts", "ws", "wss"},
	"kafka":    {"kafka", "kafkas"},
	"file":     {"file"},
}

// policyOptions are the fields a policy of each type may have besides
// type, url and credentials.
var policyOptions = map[string][]string{
	"nats":     {"name"},
	"postgres": {"maxConns"},
	"mysql":    {"maxConns"},
	"amqp":     {"name"},
	"redis":    {"maxConns"},
	"mqtt":     {"protocolVersion"},
	"kafka":    {"clientId", "sasl", "sessionTimeout"},
	"file":     {},
}

// resolve fills conn from a policy definition and says what is wrong
// with it. Messages never quote the URL: a misplaced password would be
// in it.
func (conn *Connection) resolve(def map[string]any, creds map[string]Credential, types []string) string {
	typ, _ := def["type"].(string)
	if typ == "" {
		return fmt.Sprintf("has no type (want %s)", strings.Join(types, " or "))
	}
	if !slices.Contains(types, typ) {
		return fmt.Sprintf("is of type %q (want %s)", typ, strings.Join(types, " or "))
	}
	conn.Type = typ
	raw, _ := def["url"].(string)
	if raw == "" {
		return "has no url"
	}
	// NATS takes a comma-separated list of servers.
	for _, one := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if typ == "file" {
			if err != nil || u.Scheme != "file" || (u.Host != "" && u.Host != "localhost") || !path.IsAbs(u.Path) || path.Clean(u.Path) != u.Path {
				return "url is not a valid file URL (want file:///an/absolute/directory)"
			}
			continue
		}
		if err != nil || u.Host == "" || !slices.Contains(schemes[typ], u.Scheme) {
			return fmt.Sprintf("url is not a valid %s URL (want %s://host:port…)", typ, schemes[typ][0])
		}
		if _, has := u.User.Password(); has {
			return "url must not hold a password: name a setdbparms resource in the policy's credentials field"
		}
		if typ == "mysql" && strings.EqualFold(u.Query().Get("interpolateParams"), "true") {
			return "interpolateParams is refused: parameters are bound by the server"
		}
	}
	conn.URL = raw
	conn.Options = map[string]any{}
	for k, v := range def {
		switch k {
		case "type", "url":
		case "credentials":
			res, _ := v.(string)
			cred, found := creds[res]
			if !found {
				return fmt.Sprintf("credentials: no resource %q in the setdbparms configuration", res)
			}
			conn.Credential = &cred
		default:
			if !slices.Contains(policyOptions[typ], k) {
				return fmt.Sprintf("unknown field %q (want type, url, credentials%s)", k, strings.Join(append([]string{""}, policyOptions[typ]...), ", "))
			}
			conn.Options[k] = v
		}
	}
	if typ == "mqtt" {
		if v, set := def["protocolVersion"]; set && fmt.Sprint(v) != "4" && fmt.Sprint(v) != "5" && fmt.Sprint(v) != "3.1.1" {
			return fmt.Sprintf("protocolVersion must be 5, or 4 (3.1.1, the default), not %v", v)
		}
	}
	return ""
}

// mqtt5 says whether an mqtt connection speaks MQTT 5 (user properties
// carry headers); unknown (false) without the configurations.
func (conn *Connection) mqtt5() bool {
	return conn != nil && fmt.Sprint(conn.Options["protocolVersion"]) == "5"
}

// delivery reads the fields every message-source trigger shares.
func (c *compiler) delivery(m *fieldMap, d *Delivery) bool {
	*d = Delivery{MaxInFlight: defaultMaxInFlight, Attempts: defaultAttempts, Backoff: defaultRetryWait, Exponential: true}
	ok := true
	if n := m.get("maxInFlight"); n != nil {
		v, vok := c.l.integer(c.file, n, "maxInFlight", 1, maxMaxInFlight)
		d.MaxInFlight, ok = v, ok && vok
	}
	if n := m.get("retry"); n != nil {
		rm := c.l.mapping(c.file, n, "retry", "attempts", "backoff", "exponential")
		if rm == nil {
			return false
		}
		if an := rm.get("attempts"); an != nil {
			v, vok := c.l.integer(c.file, an, "retry attempts", 1, maxDeliveryTries)
			d.Attempts, ok = v, ok && vok
		}
		if bn := rm.get("backoff"); bn != nil {
			v, vok := c.l.duration(c.file, bn, "retry backoff")
			d.Backoff, ok = v, ok && vok
		}
		if en := rm.get("exponential"); en != nil {
			v, vok := c.l.boolean(c.file, en, "retry exponential")
			d.Exponential, ok = v, ok && vok
		}
	}
	if n := m.get("deadLetter"); n != nil {
		if s, sok := c.l.str(c.file, n, "deadLetter"); !sok {
			ok = false
		} else if msg := checkSubject(s, false); msg != "" {
			c.errAt(n, "deadLetter %q: %s", s, msg)
			ok = false
		} else {
			d.DeadLetter = s
		}
	}
	return ok
}

// checkSubject enforces NATS subject syntax: dot-separated tokens without
// spaces; wildcards (* and a last >) only where a subscription allows them.
func checkSubject(s string, wildcards bool) string {
	if s == "" {
		return "must not be empty"
	}
	// Token by token without a slice of them: a computed subject is
	// checked on every publish.
	for rest := s; ; {
		t, after, more := strings.Cut(rest, ".")
		rest = after
		switch {
		case t == "":
			return "has an empty token"
		case strings.ContainsAny(t, " \t\r\n"):
			return "must not contain white space"
		case t == "*" || (t == ">" && !more):
			if !wildcards {
				return "must not contain wildcards"
			}
		case strings.ContainsAny(t, "*>"):
			return "wildcards must be whole tokens, > only the last"
		}
		if !more {
			return ""
		}
	}
}

var natsTriggerFields = []string{"connection", "subject", "queue", "stream", "consumer", "ackWait", "maxInFlight", "retry", "deadLetter"}

func (c *compiler) natsTrigger(n *yaml.Node) *NATSTrigger {
	m := c.l.mapping(c.file, n, "nats trigger", natsTriggerFields...)
	if m == nil {
		return nil
	}
	t := &NATSTrigger{}
	ok := c.delivery(m, &t.Delivery)
	if cn := m.get("connection"); cn == nil {
		c.errAt(n, "nats trigger needs connection (a policy of type nats)")
		ok = false
	} else if conn, cok := c.connection(cn, "nats trigger", "nats"); !cok {
		ok = false
	} else {
		t.Connection = conn
	}
	if sn := m.get("subject"); sn == nil {
		c.errAt(n, "nats trigger needs subject")
		ok = false
	} else if s, sok := c.l.str(c.file, sn, "subject"); sok {
		if msg := checkSubject(s, true); msg != "" {
			c.errAt(sn, "subject %q: %s", s, msg)
			ok = false
		}
		t.Subject = s
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"queue", &t.Queue}, {"stream", &t.Stream}, {"consumer", &t.Consumer}} {
		if vn := m.get(f.key); vn != nil {
			if v, vok := c.l.str(c.file, vn, f.key); vok {
				if !nameRE.MatchString(v) {
					c.errAt(vn, "%s %q must be letters, digits, '.', '_', '-' (at most 64)", f.key, v)
					ok = false
				}
				*f.dst = v
			}
		}
	}
	if t.Stream != "" {
		if t.Queue != "" {
			c.errAt(m.get("queue"), "queue is for core NATS; a JetStream consumer is shared by its name (consumer)")
			ok = false
		}
		if t.Consumer == "" {
			c.errAt(n, "a JetStream trigger (stream) needs consumer, the durable consumer's name")
			ok = false
		}
		if strings.Contains(t.Stream, ".") || strings.Contains(t.Consumer, ".") {
			c.errAt(n, "stream and consumer names must not contain '.'")
			ok = false
		}
	} else {
		for _, k := range []string{"consumer", "ackWait"} {
			if vn := m.get(k); vn != nil {
				c.errAt(vn, "%s is for JetStream triggers (set stream)", k)
				ok = false
			}
		}
	}
	if an := m.get("ackWait"); an != nil {
		d, dok := c.l.duration(c.file, an, "ackWait")
		t.AckWait, ok = d, ok && dok
	}
	if !ok {
		return nil
	}
	return t
}

// checkAckWait runs once the flow's timeout is known: a message must not
// be redelivered while its first run may still be going.
func (c *compiler) checkAckWait(f *Flow, n *yaml.Node) {
	t := f.NATS
	if t == nil || t.Stream == "" {
		return
	}
	if t.AckWait == 0 {
		t.AckWait = f.Timeout + 5*time.Second
		return
	}
	if t.AckWait <= f.Timeout {
		c.errAt(n, "ackWait %s must be longer than the flow's timeout %s", t.AckWait, f.Timeout)
	}
}
