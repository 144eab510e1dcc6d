package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"gopkg.in/yaml.v3"
)

// publishStep sends one message through a connection (NATS today) and
// puts what the server said in .response ({subject}, and {stream,
// sequence} when the server confirmed storing it).
type publishStep struct {
	stepBase
	conn    *Connection
	subject *template
	hdrKeys []string
	hdrVals []*template
	body    *expr // nil: .body
	confirm bool
}

func (c *compiler) publishStep(b stepBase, n *yaml.Node) step {
	m := c.l.mapping(c.file, n, "publish", "connection", "subject", "headers", "body", "confirm")
	if m == nil {
		return nil
	}
	s := &publishStep{stepBase: b}
	ok := true
	if cn := m.get("connection"); cn == nil {
		c.errAt(n, "publish needs connection (a policy of type nats)")
		ok = false
	} else if s.conn, ok = c.connection(cn, b.lbl, "nats"); !ok {
		ok = false
	}
	if sn := m.get("subject"); sn == nil {
		c.errAt(n, "publish needs subject")
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
	return s
}

func (s *publishStep) run(ctx context.Context, x *execution, st *state) error {
	in := st.input(x.rt)
	subj, err := s.subject.eval(ctx, in)
	if err != nil {
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("subject: %w", err), false)
	}
	if msg := checkSubject(subj, false); msg != "" {
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("subject %q: %s", subj, msg), false)
	}
	out := &Outgoing{Subject: subj, Confirm: s.confirm}
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
	if out.Body, err = payload(body); err != nil {
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("body: %w", err), false)
	}
	if x.rt.conns == nil {
		return x.stepError(ctx, s.lbl, 500, errors.New("no connectors in this runtime"), false)
	}
	resp, err := x.rt.conns.Publish(ctx, s.conn, out)
	if err != nil {
		return x.stepError(ctx, s.lbl, http.StatusBadGateway, fmt.Errorf("publish to %s: %w", subj, err), true)
	}
	st.response = resp
	return nil
}

// payload encodes a value for the wire: a string as its text, anything
// else as JSON.
func payload(v any) ([]byte, error) {
	if s, ok := v.(string); ok {
		return []byte(s), nil
	}
	return json.Marshal(v)
}
