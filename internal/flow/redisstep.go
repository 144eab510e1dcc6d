package flow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// RedisCommand is one command of a redis step, its arguments evaluated.
type RedisCommand struct {
	Command string        // upper-case, one of RedisCommands
	Key     string        // the key
	Field   string        // HSET, HGET, HDEL
	Value   string        // SET, HSET, LPUSH, RPUSH: text or JSON
	By      int64         // INCRBY
	TTL     time.Duration // SET (EX), EXPIRE
}

// RedisCommands is the subset of Redis a redis step offers: what flows
// need to cache, count, de-duplicate and queue, each on one key.
var RedisCommands = []string{"GET", "SET", "DEL", "EXISTS", "INCR", "INCRBY", "EXPIRE", "TTL",
	"HSET", "HGET", "HDEL", "HGETALL", "LPUSH", "RPUSH", "LRANGE"}

// redisStep runs one command; its reply lands in .response {value}.
type redisStep struct {
	stepBase
	conn    *Connection
	command string
	key     *template
	field   *template
	value   *expr
	by      *expr
	ttl     time.Duration
	nx      bool
}

// redisFields are the fields each command takes besides key.
var redisFields = map[string][]string{
	"GET": {}, "DEL": {}, "EXISTS": {}, "INCR": {}, "TTL": {}, "HGETALL": {}, "LRANGE": {},
	"SET": {"value", "ttl", "ifAbsent"}, "INCRBY": {"by"}, "EXPIRE": {"ttl"},
	"HSET": {"field", "value"}, "HGET": {"field"}, "HDEL": {"field"},
	"LPUSH": {"value"}, "RPUSH": {"value"},
}

// redisRequired are the fields a command cannot do without.
var redisRequired = map[string][]string{
	"SET": {"value"}, "INCRBY": {"by"}, "EXPIRE": {"ttl"}, "HSET": {"field", "value"}, "HGET": {"field"}, "HDEL": {"field"},
	"LPUSH": {"value"}, "RPUSH": {"value"},
}

func (c *compiler) redisStep(b stepBase, n *yaml.Node) step {
	m := c.l.mapping(c.file, n, "redis", "connection", "command", "key", "field", "value", "by", "ttl", "ifAbsent")
	if m == nil {
		return nil
	}
	s := &redisStep{stepBase: b}
	ok := true
	if cn := m.get("connection"); cn == nil {
		c.errAt(n, "redis needs connection (a policy of type redis)")
		ok = false
	} else if conn, cok := c.connection(cn, b.lbl, "redis"); !cok {
		ok = false
	} else {
		s.conn = conn
	}
	cmdNode := m.get("command")
	if cmdNode == nil {
		c.errAt(n, "redis needs command (one of %s)", strings.Join(RedisCommands, ", "))
		return nil
	}
	cmd, cok := c.l.str(c.file, cmdNode, "command")
	if !cok {
		return nil
	}
	s.command = strings.ToUpper(cmd)
	if !slices.Contains(RedisCommands, s.command) {
		c.errAt(cmdNode, "unsupported redis command %q (want one of %s)", cmd, strings.Join(RedisCommands, ", "))
		return nil
	}
	for _, k := range m.keys {
		switch k.Value {
		case "connection", "command", "key":
		default:
			if !slices.Contains(redisFields[s.command], k.Value) {
				c.errAt(k, "%s takes no %s", s.command, k.Value)
				ok = false
			}
		}
	}
	for _, f := range redisRequired[s.command] {
		if m.get(f) == nil {
			c.errAt(n, "%s needs %s", s.command, f)
			ok = false
		}
	}
	if kn := m.get("key"); kn == nil {
		c.errAt(n, "redis needs key")
		ok = false
	} else if s.key = c.tmpl(kn, b.lbl+" key"); s.key == nil {
		ok = false
	}
	if fn := m.get("field"); fn != nil {
		if s.field = c.tmpl(fn, b.lbl+" field"); s.field == nil {
			ok = false
		}
	}
	if vn := m.get("value"); vn != nil {
		if s.value = c.jqExpr(vn, b.lbl+" value"); s.value == nil {
			ok = false
		}
	}
	if bn := m.get("by"); bn != nil {
		if s.by = c.jqExpr(bn, b.lbl+" by"); s.by == nil {
			ok = false
		}
	}
	if tn := m.get("ttl"); tn != nil {
		d, dok := c.l.duration(c.file, tn, "ttl")
		if dok && d < time.Second {
			c.errAt(tn, "ttl must be at least 1s")
			dok = false
		}
		s.ttl, ok = d, ok && dok
	}
	if an := m.get("ifAbsent"); an != nil {
		v, vok := c.l.boolean(c.file, an, "ifAbsent")
		s.nx, ok = v, ok && vok
	}
	if !ok {
		return nil
	}
	return s
}

func (s *redisStep) run(ctx context.Context, x *execution, st *state) error {
	in := st.input(x.rt)
	cmd := &RedisCommand{Command: s.command, TTL: s.ttl}
	var err error
	if cmd.Key, err = s.key.eval(ctx, in); err != nil {
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("key: %w", err), false)
	}
	if cmd.Key == "" {
		return x.stepError(ctx, s.lbl, 500, errors.New("key is empty"), false)
	}
	if s.field != nil {
		if cmd.Field, err = s.field.eval(ctx, in); err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("field: %w", err), false)
		}
	}
	if s.value != nil {
		v, err := s.value.eval(ctx, in)
		if err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("value: %w", err), false)
		}
		b, err := payload(v)
		if err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("value: %w", err), false)
		}
		cmd.Value = string(b)
	}
	if s.by != nil {
		v, err := s.by.eval(ctx, in)
		if err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("by: %w", err), false)
		}
		a, err := sqlArg(v)
		n, isInt := a.(int64)
		if err != nil || !isInt {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("by must be an integer, not %v", v), false)
		}
		cmd.By = n
	}
	if s.nx {
		cmd.Command = "SETNX"
	}
	if x.rt.conns == nil {
		return x.stepError(ctx, s.lbl, 500, errors.New("no connectors in this runtime"), false)
	}
	res, err := x.rt.conns.Redis(ctx, s.conn, cmd)
	if err != nil {
		return x.stepError(ctx, s.lbl, http.StatusBadGateway, fmt.Errorf("redis %s: %w", s.command, err), true)
	}
	v, err := normalizeJSON(map[string]any{"value": res})
	if err != nil {
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("redis result: %w", err), false)
	}
	st.response = v
	return nil
}
