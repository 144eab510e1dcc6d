package flow

// The connectors of `sluice flow test`: publish, sql and redis steps are
// answered from a case's `connectors` fixtures, in the order the flow
// calls them, so flows that reach message servers and databases are
// tested without any.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// connectorFixture is one expected publish, sql or redis call: what the
// step must send (each field checked when given) and what it gets back.
type connectorFixture struct {
	Publish *struct {
		Connection string            `yaml:"connection"`
		Subject    string            `yaml:"subject"`
		Topic      string            `yaml:"topic"`
		Exchange   *string           `yaml:"exchange"`
		RoutingKey string            `yaml:"routingKey"`
		Key        *string           `yaml:"key"`
		Headers    map[string]string `yaml:"headers"`
		Body       yaml.Node         `yaml:"body"`
	} `yaml:"publish"`
	SQL *struct {
		Connection string      `yaml:"connection"`
		Args       []yaml.Node `yaml:"args"` // the bound values of all its statements, in order
	} `yaml:"sql"`
	Redis *struct {
		Connection string    `yaml:"connection"`
		Command    string    `yaml:"command"`
		Key        *string   `yaml:"key"`
		Field      *string   `yaml:"field"`
		Value      yaml.Node `yaml:"value"`
	} `yaml:"redis"`
	// Response is a publish's .response, a redis step's reply (in
	// .response.value) or a sql step's results (a list: one per
	// statement, {rows, count} or {rowsAffected}).
	Response yaml.Node `yaml:"response"`
	Error    string    `yaml:"error"` // the server's refusal instead of a response
}

func (f *connectorFixture) kind() (kind, conn string) {
	switch {
	case f.Publish != nil:
		return "publish", f.Publish.Connection
	case f.SQL != nil:
		return "sql", f.SQL.Connection
	case f.Redis != nil:
		return "redis", f.Redis.Connection
	}
	return "", ""
}

// fakeConnectors serves a case's connector fixtures.
type fakeConnectors struct {
	mu       sync.Mutex
	fixtures []connectorFixture
	used     []bool
	problems []string
}

var _ Connectors = (*fakeConnectors)(nil)

func (c *fakeConnectors) start(fx []connectorFixture) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range fx {
		k, _ := fx[i].kind()
		n := 0
		for _, set := range []bool{fx[i].Publish != nil, fx[i].SQL != nil, fx[i].Redis != nil} {
			if set {
				n++
			}
		}
		if k == "" || n != 1 {
			return fmt.Errorf("connectors fixture %d needs exactly one of publish, sql, redis", i+1)
		}
	}
	c.fixtures, c.used, c.problems = fx, make([]bool, len(fx)), nil
	return nil
}

func (c *fakeConnectors) finish() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.problems
	for i := range c.fixtures {
		if !c.used[i] {
			k, conn := c.fixtures[i].kind()
			p = append(p, fmt.Sprintf("expected %s step not run (connection %q)", k, conn))
		}
	}
	c.fixtures, c.used, c.problems = nil, nil, nil
	return p
}

// next takes the first unused fixture of the kind for the connection
// (any connection when the fixture names none).
func (c *fakeConnectors) next(kind string, conn *Connection) (*connectorFixture, func(format string, args ...any)) {
	for i := range c.fixtures {
		k, cn := c.fixtures[i].kind()
		if c.used[i] || k != kind || (cn != "" && cn != conn.Name) {
			continue
		}
		c.used[i] = true
		where := fmt.Sprintf("%s through %q", kind, conn.Name)
		return &c.fixtures[i], func(format string, args ...any) {
			c.problems = append(c.problems, where+": "+fmt.Sprintf(format, args...))
		}
	}
	c.problems = append(c.problems, fmt.Sprintf("unexpected %s step (connection %q): no fixture left for it", kind, conn.Name))
	return nil, nil
}

func checkField(fail func(string, ...any), name, got, want string) {
	if want != "" && got != want {
		fail("%s: got %q, want %q", name, got, want)
	}
}

func checkExact(fail func(string, ...any), name, got, want string) {
	if got != want {
		fail("%s: got %q, want %q", name, got, want)
	}
}

func (c *fakeConnectors) Publish(_ context.Context, conn *Connection, out *Outgoing) (map[string]any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, fail := c.next("publish", conn)
	if f == nil {
		return nil, errors.New("no fixture for this publish")
	}
	want := f.Publish
	checkField(fail, "subject", out.Subject, want.Subject)
	checkField(fail, "topic", out.Topic, want.Topic)
	checkField(fail, "routingKey", out.RoutingKey, want.RoutingKey)
	if want.Exchange != nil {
		checkExact(fail, "exchange", out.Exchange, *want.Exchange)
	}
	if want.Key != nil && (out.Key == nil || *out.Key != *want.Key) {
		got := "none"
		if out.Key != nil {
			got = *out.Key
		}
		fail("key: got %s, want %q", got, *want.Key)
	}
	for k, v := range want.Headers {
		got := out.Headers[k]
		for hk, hv := range out.Headers { // header names are case-insensitive
			if strings.EqualFold(hk, k) {
				got = hv
			}
		}
		if got != v {
			fail("header %s: got %q, want %q", k, got, v)
		}
	}
	if want.Body.Kind != 0 {
		c.checkBody(fail, out.Body, &want.Body)
	}
	if f.Error != "" {
		return nil, errors.New(f.Error)
	}
	resp := map[string]any{}
	if f.Response.Kind != 0 {
		v, err := nodeJSON(&f.Response)
		m, ok := v.(map[string]any)
		if err != nil || !ok {
			fail("response must be a mapping (the step's .response)")
			return nil, errors.New("bad fixture response")
		}
		resp = m
	}
	return resp, nil
}

func (c *fakeConnectors) checkBody(fail func(string, ...any), body []byte, want *yaml.Node) {
	w, err := nodeJSON(want)
	if err != nil {
		fail("fixture body: %v", err)
		return
	}
	var got any = string(body)
	if v, derr := decodeJSON(body); derr == nil {
		got = v
	}
	if diff := jsonDiff(got, w); diff != "" {
		fail("body mismatch:\n%s", diff)
	}
}

func (c *fakeConnectors) SQL(_ context.Context, conn *Connection, _ bool, stmts []Statement) ([]map[string]any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, fail := c.next("sql", conn)
	if f == nil {
		return nil, errors.New("no fixture for this sql step")
	}
	if f.SQL.Args != nil {
		var got []any
		for _, st := range stmts {
			got = append(got, st.Args...)
		}
		want := make([]any, len(f.SQL.Args))
		for i := range f.SQL.Args {
			v, err := nodeJSON(&f.SQL.Args[i])
			if err != nil {
				fail("fixture args: %v", err)
				return nil, err
			}
			want[i] = v
		}
		gotJSON, _ := normalizeJSON(got)
		if diff := jsonDiff(gotJSON, want); diff != "" {
			fail("args mismatch:\n%s", diff)
		}
	}
	if f.Error != "" {
		return nil, errors.New(f.Error)
	}
	out := make([]map[string]any, len(stmts))
	for i, st := range stmts {
		if st.Exec {
			out[i] = map[string]any{"rowsAffected": 0}
		} else {
			out[i] = map[string]any{"rows": []any{}, "count": 0}
		}
	}
	if f.Response.Kind != 0 {
		v, err := nodeJSON(&f.Response)
		list, ok := v.([]any)
		if err != nil || !ok || len(list) != len(stmts) {
			fail("response must be a list of %d result(s), one per statement ({rows, count} or {rowsAffected})", len(stmts))
			return nil, errors.New("bad fixture response")
		}
		for i, r := range list {
			m, ok := r.(map[string]any)
			if !ok {
				fail("result %d must be a mapping", i+1)
				return nil, errors.New("bad fixture response")
			}
			out[i] = m
		}
	}
	return out, nil
}

func (c *fakeConnectors) Redis(_ context.Context, conn *Connection, cmd *RedisCommand) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, fail := c.next("redis", conn)
	if f == nil {
		return nil, errors.New("no fixture for this redis step")
	}
	want := f.Redis
	checkField(fail, "command", cmd.Command, strings.ToUpper(want.Command))
	if want.Key != nil {
		checkExact(fail, "key", cmd.Key, *want.Key)
	}
	if want.Field != nil {
		checkExact(fail, "field", cmd.Field, *want.Field)
	}
	if want.Value.Kind != 0 {
		c.checkBody(fail, []byte(cmd.Value), &want.Value)
	}
	if f.Error != "" {
		return nil, errors.New(f.Error)
	}
	if f.Response.Kind == 0 {
		return nil, nil
	}
	return nodeJSON(&f.Response)
}
