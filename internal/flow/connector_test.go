package flow

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/secret"
)

// connCfg has one policy of each kind the tests name.
func connCfg() *Config {
	return &Config{
		Credentials: map[string]Credential{"bus": {User: "svc", Password: secret.New("bus-s3cret")}},
		Policies: map[string]map[string]any{
			"events":     {"type": "nats", "url": "nats://127.0.0.1:4222", "credentials": "bus", "name": "orders"},
			"plain":      {"type": "nats", "url": "nats://a:4222,nats://b:4222"},
			"pg":         {"type": "postgres", "url": "postgres://127.0.0.1:5432/test"},
			"badurl":     {"type": "nats", "url": "http//nowhere"},
			"withpw":     {"type": "nats", "url": "nats://u:pw@127.0.0.1:4222"},
			"nocreds":    {"type": "nats", "url": "nats://127.0.0.1:4222", "credentials": "missing"},
			"unknown":    {"type": "nats", "url": "nats://127.0.0.1:4222", "poolSize": 3},
			"typeless":   {"url": "nats://127.0.0.1:4222"},
			"rabbit":     {"type": "amqp", "url": "amqp://127.0.0.1:5672/", "credentials": "bus"},
			"cache":      {"type": "redis", "url": "redis://127.0.0.1:6379/0"},
			"mosquitto":  {"type": "mqtt", "url": "tcp://127.0.0.1:1883"},
			"mosquitto5": {"type": "mqtt", "url": "tcp://127.0.0.1:1883", "protocolVersion": 5},
			"mqtt6":      {"type": "mqtt", "url": "tcp://127.0.0.1:1883", "protocolVersion": 6},
			"log":        {"type": "kafka", "url": "kafka://127.0.0.1:9092,kafka://127.0.0.2:9092", "clientId": "shop"},
			"inbox":      {"type": "file", "url": "file:///var/sluice/in"},
			"relative":   {"type": "file", "url": "file://in/../x"},
			"maria":      {"type": "mysql", "url": "mysql://root@127.0.0.1:3306/test"},
			"interp":     {"type": "mysql", "url": "mysql://127.0.0.1:3306/test?interpolateParams=true"},
		},
	}
}

func natsFlow(trigger string) string {
	return "flow: consume\ntrigger:\n  nats:\n" + trigger + "steps:\n  - map: .body\n"
}

func TestConnectorLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		flow string
		want string
	}{
		{"unknown trigger field", natsFlow("    connection: events\n    subject: a\n    group: x\n"),
			`flows/a.yaml:6:5: unknown field "group" in nats trigger`},
		{"unknown policy", natsFlow("    connection: nowhere\n    subject: a\n"),
			`flows/a.yaml:4:17: nats trigger: no policy named "nowhere" in the policyproject configurations`},
		{"malformed url", natsFlow("    connection: badurl\n    subject: a\n"),
			`flows/a.yaml:4:17: nats trigger: policy "badurl": url is not a valid nats URL`},
		{"password in url", natsFlow("    connection: withpw\n    subject: a\n"),
			`flows/a.yaml:4:17: nats trigger: policy "withpw": url must not hold a password`},
		{"missing credentials", natsFlow("    connection: nocreds\n    subject: a\n"),
			`policy "nocreds": credentials: no resource "missing" in the setdbparms configuration`},
		{"unknown policy field", natsFlow("    connection: unknown\n    subject: a\n"),
			`policy "unknown": unknown field "poolSize" (want type, url, credentials, name)`},
		{"policy without type", natsFlow("    connection: typeless\n    subject: a\n"),
			`policy "typeless": has no type (want nats)`},
		{"wrong type", natsFlow("    connection: pg\n    subject: a\n"),
			`policy "pg": is of type "postgres" (want nats)`},
		{"bad subject", natsFlow("    connection: events\n    subject: 'a..b'\n"),
			`flows/a.yaml:5:14: subject "a..b": has an empty token`},
		{"consumer without stream", natsFlow("    connection: events\n    subject: a\n    consumer: c\n"),
			`flows/a.yaml:6:15: consumer is for JetStream triggers (set stream)`},
		{"stream without consumer", natsFlow("    connection: events\n    subject: a\n    stream: S\n"),
			`flows/a.yaml:4:5: a JetStream trigger (stream) needs consumer`},
		{"ackWait not above timeout", "flow: c\ntimeout: 5s\ntrigger:\n  nats: {connection: events, subject: a, stream: S, consumer: c, ackWait: 5s}\nsteps: [{map: .body}]\n",
			`flows/a.yaml:4:9: ackWait 5s must be longer than the flow's timeout 5s`},
		{"wildcard dead letter", natsFlow("    connection: events\n    subject: a\n    deadLetter: 'dl.*'\n"),
			`flows/a.yaml:6:17: deadLetter "dl.*": must not contain wildcards`},
		{"retry attempts", natsFlow("    connection: events\n    subject: a\n    retry: {attempts: 0}\n"),
			`flows/a.yaml:6:23: retry attempts must be between 1 and 100`},
		{"publish unknown field", "flow: p\nsteps:\n  - publish: {connection: events, subject: a, target: b}\n",
			`flows/a.yaml:3:47: unknown field "target" in publish`},
		{"publish unknown policy", "flow: p\nsteps:\n  - publish: {connection: nope, subject: a}\n",
			`flows/a.yaml:3:27: publish#0: no policy named "nope"`},
		{"sql unbound parameter", "flow: q\nsteps:\n  - sql:\n      connection: pg\n      query: 'SELECT * FROM t WHERE a = :a AND b = :b'\n      params: {a: .body.a}\n",
			`flows/a.yaml:5:14: unbound parameters :b: give each a value in params`},
		{"sql unused parameter", "flow: q\nsteps:\n  - sql: {connection: pg, exec: 'DELETE FROM t', params: {a: .body.a}}\n",
			`flows/a.yaml:3:59: parameter "a" is not used in the statement (no :a)`},
		{"sql positional parameter", "flow: q\nsteps:\n  - sql: {connection: maria, query: 'SELECT * FROM t WHERE a = ?'}\n",
			`flows/a.yaml:3:37: statement: positional parameter ?: name parameters instead (:name)`},
		{"sql dollar parameter", "flow: q\nsteps:\n  - sql: {connection: pg, query: 'SELECT $1'}\n",
			`statement: positional parameter $1…`},
		{"sql query and exec", "flow: q\nsteps:\n  - sql: {connection: pg, query: 'SELECT 1', exec: 'SELECT 2'}\n",
			`flows/a.yaml:3:10: a sql statement needs exactly one of query (rows) or exec (affected rows)`},
		{"sql wrong policy type", "flow: q\nsteps:\n  - sql: {connection: events, query: 'SELECT 1'}\n",
			`flows/a.yaml:3:23: sql#0: policy "events": is of type "nats" (want postgres or mysql)`},
		{"sql interpolateParams", "flow: q\nsteps:\n  - sql: {connection: interp, query: 'SELECT 1'}\n",
			`policy "interp": interpolateParams is refused`},
		{"sql unknown field", "flow: q\nsteps:\n  - sql: {connection: pg, query: 'SELECT 1', args: {}}\n",
			`unknown field "args" in sql`},
		{"sql unterminated string", "flow: q\nsteps:\n  - sql: {connection: pg, query: \"SELECT 'a\"}\n",
			`statement: unterminated ' quote`},
		{"amqp trigger without queue", "flow: c\ntrigger:\n  amqp: {connection: rabbit}\nsteps: [{map: .body}]\n",
			`flows/a.yaml:3:9: amqp trigger needs queue`},
		{"amqp reserved queue", "flow: c\ntrigger:\n  amqp: {connection: rabbit, queue: amq.x}\nsteps: [{map: .body}]\n",
			`flows/a.yaml:3:37: queue "amq.x": names starting with amq. are reserved`},
		{"amqp trigger on a nats policy", "flow: c\ntrigger:\n  amqp: {connection: events, queue: q}\nsteps: [{map: .body}]\n",
			`flows/a.yaml:3:22: amqp trigger: policy "events": is of type "nats" (want amqp)`},
		{"amqp publish without routing key", "flow: p\nsteps:\n  - publish: {connection: rabbit, exchange: orders}\n",
			`flows/a.yaml:3:14: an AMQP publish needs routingKey`},
		{"amqp publish with subject", "flow: p\nsteps:\n  - publish: {connection: rabbit, routingKey: q, subject: s}\n",
			`subject is for NATS; an AMQP publish has exchange and routingKey`},
		{"redis unknown command", "flow: r\nsteps:\n  - redis: {connection: cache, command: FLUSHALL, key: k}\n",
			`flows/a.yaml:3:41: unsupported redis command "FLUSHALL"`},
		{"redis field a command does not take", "flow: r\nsteps:\n  - redis: {connection: cache, command: GET, key: k, value: .body}\n",
			`flows/a.yaml:3:54: GET takes no value`},
		{"redis missing value", "flow: r\nsteps:\n  - redis: {connection: cache, command: SET, key: k}\n",
			`flows/a.yaml:3:12: SET needs value`},
		{"redis malformed url policy", "flow: r\nsteps:\n  - redis: {connection: pg, command: GET, key: k}\n",
			`policy "pg": is of type "postgres" (want redis)`},
		{"mqtt qos without clientId", "flow: m\ntrigger:\n  mqtt: {connection: mosquitto, topic: 'a/+'}\nsteps: [{map: .body}]\n",
			`flows/a.yaml:3:9: an mqtt trigger with qos 1 needs clientId`},
		{"mqtt bad topic", "flow: m\ntrigger:\n  mqtt: {connection: mosquitto, topic: 'a/#/b', qos: 0}\nsteps: [{map: .body}]\n",
			`topic "a/#/b": wildcards must be whole levels, # only the last`},
		{"mqtt qos out of range", "flow: m\ntrigger:\n  mqtt: {connection: mosquitto, topic: a, qos: 3, clientId: c}\nsteps: [{map: .body}]\n",
			`qos must be between 0 and 2`},
		{"mqtt publish wildcard", "flow: p\nsteps:\n  - publish: {connection: mosquitto, topic: 'a/+'}\n",
			`topic "a/+": must not contain wildcards`},
		{"mqtt publish headers", "flow: p\nsteps:\n  - publish: {connection: mosquitto, topic: a, headers: {x: y}}\n",
			`headers is not for MQTT 3.1.1 publishes`},
		{"kafka trigger without group", "flow: k\ntrigger:\n  kafka: {connection: log, topics: [orders]}\nsteps: [{map: .body}]\n",
			`flows/a.yaml:3:10: kafka trigger needs group`},
		{"kafka bad topic", "flow: k\ntrigger:\n  kafka: {connection: log, topics: [orders, 'a b'], group: g}\nsteps: [{map: .body}]\n",
			`flows/a.yaml:3:45: topic "a b": must be letters, digits, '.', '_', '-'`},
		{"kafka topics not a list", "flow: k\ntrigger:\n  kafka: {connection: log, topics: orders, group: g}\nsteps: [{map: .body}]\n",
			`topics must be a non-empty list of topic names`},
		{"kafka startAt", "flow: k\ntrigger:\n  kafka: {connection: log, topics: [o], group: g, startAt: middle}\nsteps: [{map: .body}]\n",
			`startAt must be earliest or latest, not "middle"`},
		{"kafka trigger on an mqtt policy", "flow: k\ntrigger:\n  kafka: {connection: mosquitto, topics: [o], group: g}\nsteps: [{map: .body}]\n",
			`kafka trigger: policy "mosquitto": is of type "mqtt" (want kafka)`},
		{"kafka publish qos", "flow: p\nsteps:\n  - publish: {connection: log, topic: o, qos: 1}\n",
			`flows/a.yaml:3:47: qos is not for Kafka publishes`},
		{"kafka publish bad topic", "flow: p\nsteps:\n  - publish: {connection: log, topic: 'o/x'}\n",
			`topic "o/x": must be letters, digits`},
		{"mqtt protocol version", "flow: p\nsteps:\n  - publish: {connection: mqtt6, topic: a}\n",
			`policy "mqtt6": protocolVersion must be 5, or 4 (3.1.1, the default), not 6`},
		{"mqtt publish key", "flow: p\nsteps:\n  - publish: {connection: mosquitto, topic: a, key: k}\n",
			`key is for Kafka publishes`},
		{"file glob with a directory", "flow: f\ntrigger:\n  file: {connection: inbox, glob: 'a/*.json'}\nsteps: [{map: .body}]\n",
			`flows/a.yaml:3:35: glob "a/*.json" must be a file name pattern like *.json`},
		{"file url not absolute", "flow: f\ntrigger:\n  file: {connection: relative}\nsteps: [{map: .body}]\n",
			`policy "relative": url is not a valid file URL (want file:///an/absolute/directory)`},
		{"publish wildcard subject", "flow: p\nsteps:\n  - publish: {connection: events, subject: 'a.>'}\n",
			`flows/a.yaml:3:44: subject "a.>": must not contain wildcards`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(context.Background(), project(map[string]string{"flows/a.yaml": tc.flow}), connCfg())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "bus-s3cret") || strings.Contains(err.Error(), ":pw@") {
				t.Fatalf("error shows a secret: %v", err)
			}
		})
	}
}

func TestNATSTriggerLoads(t *testing.T) {
	files := map[string]string{"flows/a.yaml": natsFlow("    connection: events\n    subject: orders.>\n    stream: ORDERS\n    consumer: writer\n    maxInFlight: 8\n    retry: {attempts: 5, backoff: 200ms}\n    deadLetter: orders.dead\n")}
	f := load(t, files, connCfg(), "consume")
	n := f.NATS
	if n == nil || n.Subject != "orders.>" || n.Stream != "ORDERS" || n.Consumer != "writer" || n.MaxInFlight != 8 ||
		n.Attempts != 5 || n.Backoff != 200*time.Millisecond || !n.Exponential || n.DeadLetter != "orders.dead" {
		t.Fatalf("trigger = %+v", n)
	}
	if n.AckWait != f.Timeout+5*time.Second {
		t.Errorf("default ackWait = %s, want the timeout %s + 5s", n.AckWait, f.Timeout)
	}
	c := n.Connection
	if c.Type != "nats" || c.URL != "nats://127.0.0.1:4222" || c.Credential == nil || c.Credential.User != "svc" || c.Options["name"] != "orders" {
		t.Fatalf("connection = %+v", c)
	}
	if got := []time.Duration{n.BackoffFor(1), n.BackoffFor(2), n.BackoffFor(3)}; got[0] != 200*time.Millisecond || got[2] != 800*time.Millisecond {
		t.Errorf("backoffs = %v", got)
	}
	// Without a Config (bar build, upload) the policy is not resolved.
	if _, err := Load(context.Background(), project(files), nil); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

// recordingConnectors stands in for the runtime's hub.
type recordingConnectors struct {
	sent  []*Outgoing
	stmts []Statement
	tx    bool
	redis []*RedisCommand
	err   error
}

func (r *recordingConnectors) Publish(_ context.Context, c *Connection, m *Outgoing) (map[string]any, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.sent = append(r.sent, m)
	return map[string]any{"subject": m.Subject, "policy": c.Name}, nil
}

func (r *recordingConnectors) Redis(_ context.Context, c *Connection, cmd *RedisCommand) (any, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.redis = append(r.redis, cmd)
	return map[string]any{"got": cmd.Value}, nil
}

func (r *recordingConnectors) SQL(_ context.Context, c *Connection, tx bool, stmts []Statement) ([]map[string]any, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.stmts, r.tx = stmts, tx
	out := make([]map[string]any, len(stmts))
	for i, st := range stmts {
		if st.Exec {
			out[i] = map[string]any{"rowsAffected": int64(1)}
		} else {
			out[i] = map[string]any{"rows": []any{map[string]any{"id": "o-1", "n": int64(2)}}, "count": 1}
		}
	}
	return out, nil
}

func TestPublishStep(t *testing.T) {
	rc := &recordingConnectors{}
	cfg := connCfg()
	cfg.Connectors = rc
	f := load(t, map[string]string{"flows/a.yaml": `flow: p
steps:
  - publish:
      connection: events
      subject: 'orders.${ .body.id }'
      headers: {nats-msg-id: '${ .body.id }', x-from: '${ .source.subject }'}
      body: '{id: .body.id, n: 1}'
  - publish: {connection: plain, subject: log, body: '"placed " + .body.id'}
  - map: .response
`}, cfg, "p")
	resp, err := f.Run(context.Background(), &Message{Body: map[string]any{"id": "o-1"}, Source: map[string]any{"subject": "in"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.sent) != 2 || rc.sent[0].Subject != "orders.o-1" || string(rc.sent[0].Body) != `{"id":"o-1","n":1}` ||
		rc.sent[0].Headers["nats-msg-id"] != "o-1" || rc.sent[0].Headers["x-from"] != "in" || string(rc.sent[1].Body) != "placed o-1" {
		t.Fatalf("sent %+v", rc.sent)
	}
	if got := jsonString(t, resp.Body); got != `{"policy":"plain","subject":"log"}` {
		t.Errorf(".response = %s", got)
	}

	// A subject made at run time is checked too; a server's refusal
	// fails the step with 502, redacted.
	f = load(t, map[string]string{"flows/a.yaml": "flow: p\nsteps:\n  - publish: {connection: events, subject: '${ .body }'}\n"}, cfg, "p")
	if _, err := f.Run(context.Background(), &Message{Body: "a b"}, nil); err == nil || !strings.Contains(err.Error(), "must not contain white space") {
		t.Fatalf("bad subject: %v", err)
	}
	rc.err = errors.New("refused for svc:bus-s3cret")
	_, err = f.Run(context.Background(), &Message{Body: "ok"}, nil)
	var fe *Error
	if !errors.As(err, &fe) || fe.Status != 502 || strings.Contains(fe.Message, "bus-s3cret") {
		t.Fatalf("refusal: %#v", err)
	}
}

func TestKafka(t *testing.T) {
	rc := &recordingConnectors{}
	cfg := connCfg()
	cfg.Connectors = rc
	f := load(t, map[string]string{"flows/a.yaml": `flow: k
trigger:
  kafka: {connection: log, topics: [orders, returns], group: shop, maxInFlight: 4, deadLetter: orders.dead, startAt: latest}
steps:
  - publish: {connection: log, topic: 'audit-${ .source.topic }', key: '${ .body.id }', headers: {from: '${ .source.partition }'}}
`}, cfg, "k")
	k := f.Kafka
	if k == nil || strings.Join(k.Topics, ",") != "orders,returns" || k.Group != "shop" || k.MaxInFlight != 4 || k.DeadLetter != "orders.dead" ||
		!k.StartAtEnd || k.Connection.Options["clientId"] != "shop" {
		t.Fatalf("trigger = %+v", k)
	}
	if _, err := f.Run(context.Background(), &Message{Body: map[string]any{"id": "o-1"}, Source: map[string]any{"topic": "orders", "partition": 2}}, nil); err != nil {
		t.Fatal(err)
	}
	if len(rc.sent) != 1 || rc.sent[0].Topic != "audit-orders" || rc.sent[0].Key == nil || *rc.sent[0].Key != "o-1" ||
		rc.sent[0].Headers["from"] != "2" || !rc.sent[0].Confirm {
		t.Fatalf("sent %+v", rc.sent)
	}
	// Without the configurations a key tells a Kafka publish from an
	// MQTT one.
	if _, err := Load(context.Background(), project(map[string]string{"flows/a.yaml": "flow: p\nsteps:\n  - publish: {connection: x, topic: o, key: k, headers: {a: b}}\n"}), nil); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

// TestMQTT5PublishHeaders: headers are MQTT 5's user properties.
func TestMQTT5PublishHeaders(t *testing.T) {
	rc := &recordingConnectors{}
	cfg := connCfg()
	cfg.Connectors = rc
	f := load(t, map[string]string{"flows/a.yaml": "flow: p\nsteps:\n  - publish: {connection: mosquitto5, topic: 'a/${ .body.id }', qos: 2, headers: {order: '${ .body.id }'}}\n"}, cfg, "p")
	if _, err := f.Run(context.Background(), &Message{Body: map[string]any{"id": "o-1"}}, nil); err != nil {
		t.Fatal(err)
	}
	if len(rc.sent) != 1 || rc.sent[0].Topic != "a/o-1" || rc.sent[0].QoS != 2 || rc.sent[0].Headers["order"] != "o-1" {
		t.Fatalf("sent %+v", rc.sent)
	}
}

func TestAMQP(t *testing.T) {
	rc := &recordingConnectors{}
	cfg := connCfg()
	cfg.Connectors = rc
	p, err := Load(context.Background(), project(map[string]string{
		"flows/a.yaml": "flow: c\ntrigger:\n  amqp: {connection: rabbit, queue: orders, declare: true, maxInFlight: 4, deadLetter: orders.dead}\nsteps:\n  - publish: {connection: rabbit, exchange: events, routingKey: 'order.${ .body.id }'}\n",
	}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := p.Flow("c")
	if a := f.AMQP; a == nil || a.Queue != "orders" || !a.Declare || a.MaxInFlight != 4 || a.DeadLetter != "orders.dead" || a.Connection.Credential == nil {
		t.Fatalf("trigger %+v", f.AMQP)
	}
	if _, err := f.Run(context.Background(), &Message{Body: map[string]any{"id": "7"}}, nil); err != nil {
		t.Fatal(err)
	}
	if len(rc.sent) != 1 || rc.sent[0].Exchange != "events" || rc.sent[0].RoutingKey != "order.7" || !rc.sent[0].Confirm {
		t.Fatalf("sent %+v", rc.sent)
	}
}

func TestRedisStep(t *testing.T) {
	rc := &recordingConnectors{}
	cfg := connCfg()
	cfg.Connectors = rc
	f := load(t, map[string]string{"flows/a.yaml": `flow: r
steps:
  - redis: {connection: cache, command: set, key: 'order:${ .body.id }', value: .body, ttl: 10m, ifAbsent: true}
  - redis: {connection: cache, command: INCRBY, key: orders, by: .body.n}
  - map: .response
`}, cfg, "r")
	resp, err := f.Run(context.Background(), &Message{Body: map[string]any{"id": "o-1", "n": 3}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.redis) != 2 || rc.redis[0].Command != "SETNX" || rc.redis[0].Key != "order:o-1" || rc.redis[0].Value != `{"id":"o-1","n":3}` ||
		rc.redis[0].TTL != 10*time.Minute || rc.redis[1].By != 3 {
		t.Fatalf("commands %+v %+v", rc.redis[0], rc.redis[1])
	}
	if got := jsonString(t, resp.Body); got != `{"value":{"got":""}}` {
		t.Errorf("response %s", got)
	}
}

func TestSplitNamed(t *testing.T) {
	tests := []struct{ in, parts, names string }{
		{"SELECT :a, :b_2", `["SELECT ",", ",""]`, `["a","b_2"]`},
		{"SELECT ':not', \"also:not\", x::int, :yes -- :comment\n/* :c */ $$ :d $$ $t$ :e $t$", `["SELECT ':not', \"also:not\", x::int, "," -- :comment\n/* :c */ $$ :d $$ $t$ :e $t$"]`, `["yes"]`},
		{"INSERT INTO t VALUES (:id, 'it''s :x', :id)", `["INSERT INTO t VALUES (",", 'it''s :x', ",")"]`, `["id","id"]`},
		{"SELECT `a:b` FROM t WHERE c = :c", "[\"SELECT `a:b` FROM t WHERE c = \",\"\"]", `["c"]`},
	}
	for _, tc := range tests {
		parts, names, msg := splitNamed(tc.in)
		if msg != "" || jsonString(t, parts) != tc.parts || jsonString(t, names) != tc.names {
			t.Errorf("splitNamed(%q) = %s %s %q", tc.in, jsonString(t, parts), jsonString(t, names), msg)
		}
	}
}

func TestSQLStep(t *testing.T) {
	rc := &recordingConnectors{}
	cfg := connCfg()
	cfg.Connectors = rc
	f := load(t, map[string]string{"flows/a.yaml": `flow: q
steps:
  - sql:
      connection: pg
      query: 'SELECT id, n FROM orders WHERE customer = :customer AND total > :min AND tags @> :tags'
      params: {customer: .body.customer, min: .body.min, tags: '[.body.tag]'}
  - set: {first: '.response.rows[0].n'}
  - sql:
      connection: pg
      transaction:
        - exec: 'UPDATE orders SET seen = :seen WHERE customer = :customer'
          params: {seen: true, customer: .body.customer}
        - query: SELECT 1
  - map: '{first: .vars.first, tx: .response}'
`}, cfg, "q")
	resp, err := f.Run(context.Background(), &Message{Body: map[string]any{"customer": "acme'; --", "min": 10, "tag": "x"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := jsonString(t, resp.Body); got != `{"first":2,"tx":{"results":[{"rowsAffected":1},{"count":1,"rows":[{"id":"o-1","n":2}]}]}}` {
		t.Errorf("body %s", got)
	}
	if !rc.tx || len(rc.stmts) != 2 || jsonString(t, rc.stmts[0].Args) != `[true,"acme'; --"]` || rc.stmts[1].Exec {
		t.Errorf("transaction %+v", rc.stmts)
	}

	rc.err = errors.New("connection refused for postgres:bus-s3cret")
	_, err = f.Run(context.Background(), &Message{Body: map[string]any{"customer": "a", "min": 1, "tag": "x"}}, nil)
	var fe *Error
	if !errors.As(err, &fe) || fe.Status != 502 || strings.Contains(fe.Message, "bus-s3cret") || !strings.Contains(fe.Message, "sql#0: sql: connection refused") {
		t.Fatalf("refusal: %#v", err)
	}
}

func TestCheckSubject(t *testing.T) {
	for _, c := range []struct {
		subject   string
		wildcards bool
		want      string
	}{
		{"orders", false, ""},
		{"orders.eu.created", false, ""},
		{"", false, "must not be empty"},
		{"orders.", false, "has an empty token"},
		{".orders", false, "has an empty token"},
		{"orders..eu", false, "has an empty token"},
		{"orders.e u", false, "must not contain white space"},
		{"orders.*", false, "must not contain wildcards"},
		{"orders.*.created", true, ""},
		{"orders.>", true, ""},
		{">", true, ""},
		{"orders.>.created", true, "wildcards must be whole tokens, > only the last"},
		{"orders.e*", true, "wildcards must be whole tokens, > only the last"},
	} {
		if got := checkSubject(c.subject, c.wildcards); got != c.want {
			t.Errorf("checkSubject(%q, %v) = %q, want %q", c.subject, c.wildcards, got, c.want)
		}
	}
}
