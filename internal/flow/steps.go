package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// step is one compiled step.
type step interface {
	label() string // kind and index, nested with "/", e.g. "try#2/http#0"
	run(ctx context.Context, x *execution, st *state) error
}

type stepBase struct{ lbl string }

func (b *stepBase) label() string { return b.lbl }

// stepKinds lists every step kind, in the order the docs present them.
var stepKinds = []string{"map", "set", "validate", "http", "publish", "sql", "redis", "switch", "for-each", "try", "call", "log", "reply", "fail"}

// compiler turns the YAML of one flow's steps into steps.
type compiler struct {
	l     *loader
	file  string
	flow  *Flow
	lines []string // the file's lines, to place errors inside block scalars
}

func (c *compiler) errAt(n *yaml.Node, format string, args ...any) {
	c.l.errAt(c.file, n, format, args...)
}

const maxStepDepth = 32

func (c *compiler) steps(n *yaml.Node, prefix string) []step {
	n = deref(n)
	if strings.Count(prefix, "/") > maxStepDepth {
		c.errAt(n, "steps nested too deeply")
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		c.errAt(n, "steps must be a list, not %s", kindName(n))
		return nil
	}
	out := make([]step, 0, len(n.Content))
	for i, sn := range n.Content {
		if s := c.step(sn, prefix, i); s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (c *compiler) step(n *yaml.Node, prefix string, i int) step {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		c.errAt(n, "a step must be a mapping like {map: ...}, not %s", kindName(n))
		return nil
	}
	m := c.l.mapping(c.file, n, "step")
	if m == nil {
		return nil
	}
	var kind string
	var body *yaml.Node
	for _, k := range m.keys {
		switch {
		case k.Value == "name":
			continue
		case !contains(stepKinds, k.Value):
			c.errAt(k, "unknown step kind %q (want one of %s)", k.Value, strings.Join(stepKinds, ", "))
			return nil
		case kind != "":
			c.errAt(k, "a step has exactly one kind; found both %s and %s", kind, k.Value)
			return nil
		}
		kind, body = k.Value, m.get(k.Value)
	}
	if kind == "" {
		c.errAt(n, "step has no kind (want one of %s)", strings.Join(stepKinds, ", "))
		return nil
	}
	lbl := prefix + kind + "#" + strconv.Itoa(i)
	if nn := m.get("name"); nn != nil {
		if name, ok := c.l.str(c.file, nn, "name"); ok {
			lbl += "[" + name + "]"
		}
	}
	b := stepBase{lbl: lbl}
	switch kind {
	case "map":
		e := c.jqExpr(body, lbl)
		if e == nil {
			return nil
		}
		return &mapStep{stepBase: b, e: e}
	case "set":
		return c.setStep(b, body)
	case "validate":
		return c.validateStep(b, body)
	case "http":
		return c.httpStep(b, body)
	case "publish":
		return c.publishStep(b, body)
	case "sql":
		return c.sqlStep(b, body)
	case "redis":
		return c.redisStep(b, body)
	case "switch":
		return c.switchStep(b, body)
	case "for-each":
		return c.forEachStep(b, body)
	case "try":
		return c.tryStep(b, body)
	case "call":
		return c.callStep(b, body)
	case "log":
		return c.logStep(b, body)
	case "reply":
		return c.replyStep(b, body)
	case "fail":
		return c.failStep(b, body)
	}
	return nil
}

// --- map

// mapStep replaces the body with its program's output.
type mapStep struct {
	stepBase
	e *expr
}

func (s *mapStep) run(ctx context.Context, x *execution, st *state) error {
	v, err := s.e.eval(ctx, st.input(x.rt))
	if err != nil {
		return x.stepError(ctx, s.lbl, 500, err, false)
	}
	st.body = v
	return nil
}

// --- set

// setStep assigns variables; every expression sees the message as it was
// before the step.
type setStep struct {
	stepBase
	names []string
	exprs []*expr
}

func (c *compiler) setStep(b stepBase, n *yaml.Node) step {
	m := c.l.mapping(c.file, n, "set")
	if m == nil {
		return nil
	}
	if len(m.keys) == 0 {
		c.errAt(n, "set needs at least one variable")
		return nil
	}
	s := &setStep{stepBase: b}
	ok := true
	for _, k := range m.keys {
		if !identRE.MatchString(k.Value) {
			c.errAt(k, "variable name %q must be an identifier", k.Value)
			ok = false
			continue
		}
		e := c.jqExpr(m.get(k.Value), b.lbl+" "+k.Value)
		if e == nil {
			ok = false
			continue
		}
		s.names = append(s.names, k.Value)
		s.exprs = append(s.exprs, e)
	}
	if !ok {
		return nil
	}
	return s
}

func (s *setStep) run(ctx context.Context, x *execution, st *state) error {
	in := st.input(x.rt)
	vars := st.vars
	for i, e := range s.exprs {
		v, err := e.eval(ctx, in)
		if err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("%s: %w", s.names[i], err), false)
		}
		vars = vars.with(s.names[i], v)
	}
	st.vars = vars
	return nil
}

// --- switch

type switchCase struct {
	when  *expr
	steps []step
}

// switchStep runs the steps of the first case whose condition is true
// (jq truth: anything but false and null), else the default.
type switchStep struct {
	stepBase
	cases []switchCase
	dflt  []step
}

func (c *compiler) switchStep(b stepBase, n *yaml.Node) step {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		c.errAt(n, "switch must be a list of {when, steps} cases and an optional {default}, not %s", kindName(n))
		return nil
	}
	s := &switchStep{stepBase: b}
	hasDefault := false
	for i, cn := range n.Content {
		m := c.l.mapping(c.file, cn, "switch case", "when", "steps", "default")
		if m == nil {
			continue
		}
		prefix := fmt.Sprintf("%s/case#%d/", b.lbl, i)
		if d := m.get("default"); d != nil {
			if m.get("when") != nil || m.get("steps") != nil {
				c.errAt(cn, "a default case has no when or steps; write {default: [steps]}")
				continue
			}
			if hasDefault {
				c.errAt(cn, "switch has more than one default")
				continue
			}
			if i != len(n.Content)-1 {
				c.errAt(cn, "default must be the last case of a switch")
			}
			hasDefault = true
			s.dflt = c.steps(d, b.lbl+"/default/")
			continue
		}
		w, sn := m.get("when"), m.get("steps")
		if w == nil || sn == nil {
			c.errAt(cn, "a switch case needs when and steps")
			continue
		}
		e := c.jqExpr(w, b.lbl+" when")
		steps := c.steps(sn, prefix)
		if e != nil {
			s.cases = append(s.cases, switchCase{when: e, steps: steps})
		}
	}
	if len(n.Content) == 0 {
		c.errAt(n, "switch has no cases")
	}
	return s
}

func (s *switchStep) run(ctx context.Context, x *execution, st *state) error {
	in := st.input(x.rt)
	for _, cs := range s.cases {
		v, err := cs.when.eval(ctx, in)
		if err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("when %s: %w", cs.when.src, err), false)
		}
		if truthy(v) {
			return x.runSteps(ctx, cs.steps, st)
		}
	}
	return x.runSteps(ctx, s.dflt, st)
}

// --- for-each

// forEachStep runs its steps once per element of an array, with the
// element in .vars.<as>; with `into`, the element's final value (steps may
// `set` it) is collected into the array .vars.<into>.
type forEachStep struct {
	stepBase
	items *expr
	as    string
	into  string
	steps []step
}

func (c *compiler) forEachStep(b stepBase, n *yaml.Node) step {
	m := c.l.mapping(c.file, n, "for-each", "items", "as", "steps", "into")
	if m == nil {
		return nil
	}
	s := &forEachStep{stepBase: b, as: "item"}
	ok := true
	if in := m.get("items"); in == nil {
		c.errAt(n, "for-each needs items (a jq expression giving an array)")
		ok = false
	} else if s.items = c.jqExpr(in, b.lbl+" items"); s.items == nil {
		ok = false
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"as", &s.as}, {"into", &s.into}} {
		if vn := m.get(f.key); vn != nil {
			if v, vok := c.l.str(c.file, vn, f.key); vok {
				if !identRE.MatchString(v) {
					c.errAt(vn, "%s must be an identifier, not %q", f.key, v)
					ok = false
				}
				*f.dst = v
			}
		}
	}
	if s.into != "" && s.into == s.as {
		c.errAt(m.get("into"), "into must differ from as (%q)", s.as)
		ok = false
	}
	if sn := m.get("steps"); sn == nil {
		c.errAt(n, "for-each needs steps")
		ok = false
	} else {
		s.steps = c.steps(sn, b.lbl+"/")
	}
	if !ok {
		return nil
	}
	return s
}

func (s *forEachStep) run(ctx context.Context, x *execution, st *state) error {
	v, err := s.items.eval(ctx, st.input(x.rt))
	if err != nil {
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("items: %w", err), false)
	}
	var items []any
	switch v := v.(type) {
	case nil:
	case []any:
		items = v
	default:
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("items must be an array, not %s", typeName(v)), false)
	}
	var collected []any
	if s.into != "" {
		collected = make([]any, 0, len(items))
	}
	for _, item := range items {
		st.vars = st.vars.with(s.as, item)
		if err := x.runSteps(ctx, s.steps, st); err != nil {
			return err
		}
		if s.into != "" {
			collected = append(collected, st.vars.get(s.as))
		}
	}
	st.vars = st.vars.without(s.as, s.into, collected)
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return "a number"
}

// --- try

// tryStep runs its steps; when one fails with an *Error (fail, failed
// validation, broken step, unreachable peer) it runs catch with the error
// in .error {status, message, step, details}. Timeouts and cancellation
// are not caught: they end the flow.
type tryStep struct {
	stepBase
	steps []step
	catch []step
}

func (c *compiler) tryStep(b stepBase, n *yaml.Node) step {
	m := c.l.mapping(c.file, n, "try", "steps", "catch")
	if m == nil {
		return nil
	}
	s := &tryStep{stepBase: b}
	if sn := m.get("steps"); sn == nil {
		c.errAt(n, "try needs steps")
	} else {
		s.steps = c.steps(sn, b.lbl+"/")
	}
	if cn := m.get("catch"); cn == nil {
		c.errAt(n, "try needs catch (steps run when a step fails)")
	} else {
		s.catch = c.steps(cn, b.lbl+"/catch/")
	}
	return s
}

func (s *tryStep) run(ctx context.Context, x *execution, st *state) error {
	err := x.runSteps(ctx, s.steps, st)
	var fe *Error
	if err == nil || !errors.As(err, &fe) || ctx.Err() != nil {
		return err
	}
	st.errv = map[string]any{"status": fe.Status, "message": fe.Message, "step": fe.Step, "details": fe.Details}
	err = x.runSteps(ctx, s.catch, st)
	st.errv = nil
	return err
}

// --- call

// callStep runs another flow of the project on a copy of the message; the
// called flow's answer body becomes .body. Its variables stay its own.
type callStep struct {
	stepBase
	target string
	node   *yaml.Node
	flow   *Flow // resolved after every flow is parsed
}

func (c *compiler) callStep(b stepBase, n *yaml.Node) step {
	n = deref(n)
	var target string
	var ok bool
	if n.Kind == yaml.MappingNode {
		m := c.l.mapping(c.file, n, "call", "flow")
		if m == nil {
			return nil
		}
		fn := m.get("flow")
		if fn == nil {
			c.errAt(n, "call needs flow (the name of a flow of this project)")
			return nil
		}
		n = fn
	}
	if target, ok = c.l.str(c.file, n, "call"); !ok {
		return nil
	}
	s := &callStep{stepBase: b, target: target, node: n}
	c.flow.prog.calls = append(c.flow.prog.calls, s)
	return s
}

func (s *callStep) run(ctx context.Context, x *execution, st *state) error {
	sub := &state{body: st.body, headers: st.headers, query: st.query, params: st.params, vars: st.vars, source: st.source}
	inner := &execution{rt: x.rt, tr: x.tr, flow: s.flow.Name}
	resp, err := inner.runFlow(ctx, s.flow, sub)
	if err != nil {
		return err
	}
	st.body = resp.Body
	return nil
}

// --- log

type logStep struct {
	stepBase
	level slog.Level
	msg   *template
}

func (c *compiler) logStep(b stepBase, n *yaml.Node) step {
	n = deref(n)
	s := &logStep{stepBase: b, level: slog.LevelInfo}
	mn := n
	if n.Kind == yaml.MappingNode {
		m := c.l.mapping(c.file, n, "log", "message", "level")
		if m == nil {
			return nil
		}
		if ln := m.get("level"); ln != nil {
			if lv, ok := c.l.str(c.file, ln, "level"); ok {
				if err := s.level.UnmarshalText([]byte(lv)); err != nil {
					c.errAt(ln, "unknown log level %q (want debug, info, warn, error)", lv)
				}
			}
		}
		if mn = m.get("message"); mn == nil {
			c.errAt(n, "log needs message")
			return nil
		}
	}
	if s.msg = c.tmpl(mn, b.lbl+" message"); s.msg == nil {
		return nil
	}
	return s
}

func (s *logStep) run(ctx context.Context, x *execution, st *state) error {
	if !x.rt.logger.Enabled(ctx, s.level) {
		return nil
	}
	msg, err := s.msg.eval(ctx, st.input(x.rt))
	if err != nil {
		return x.stepError(ctx, s.lbl, 500, err, false)
	}
	x.rt.logger.LogAttrs(ctx, s.level, x.rt.redact.string(msg), slog.String("flow", x.flow), slog.String("step", s.lbl))
	return nil
}

// --- reply

// replyStep ends the flow with an answer.
type replyStep struct {
	stepBase
	status  *expr
	hdrKeys []string
	hdrVals []*template
	body    *expr // nil: the current body
}

func (c *compiler) replyStep(b stepBase, n *yaml.Node) step {
	m := c.l.mapping(c.file, n, "reply", "status", "headers", "body")
	if m == nil {
		return nil
	}
	s := &replyStep{stepBase: b, status: &expr{konst: true, val: 200}}
	ok := true
	if sn := m.get("status"); sn != nil {
		if s.status = c.statusExpr(sn, b.lbl+" status"); s.status == nil {
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
	if !ok {
		return nil
	}
	return s
}

// statusExpr accepts a literal status or a jq expression giving one.
func (c *compiler) statusExpr(n *yaml.Node, what string) *expr {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, ok := c.l.integer(c.file, n, what, 100, 599)
		if !ok {
			return nil
		}
		return &expr{konst: true, val: v}
	}
	return c.jqExpr(n, what)
}

func (c *compiler) headerTemplates(n *yaml.Node, lbl string) ([]string, []*template, bool) {
	m := c.l.mapping(c.file, n, "headers")
	if m == nil {
		return nil, nil, false
	}
	var keys []string
	var vals []*template
	ok := true
	for _, k := range m.keys {
		if !validHeaderName(k.Value) {
			c.errAt(k, "invalid header name %q", k.Value)
			ok = false
			continue
		}
		t := c.tmpl(m.get(k.Value), lbl+" header "+k.Value)
		if t == nil {
			ok = false
			continue
		}
		keys = append(keys, strings.ToLower(k.Value))
		vals = append(vals, t)
	}
	return keys, vals, ok
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 126 || r <= 32 || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

func (s *replyStep) run(ctx context.Context, x *execution, st *state) error {
	in := st.input(x.rt)
	sv, err := s.status.eval(ctx, in)
	if err != nil {
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("status: %w", err), false)
	}
	status, ok := toStatus(sv)
	if !ok {
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("status must be an integer from 100 to 599, not %v", sv), false)
	}
	r := &Response{Status: status, Body: st.body}
	if len(s.hdrKeys) > 0 {
		r.Headers = make(map[string]string, len(s.hdrKeys))
		for i, k := range s.hdrKeys {
			v, err := s.hdrVals[i].eval(ctx, in)
			if err != nil {
				return x.stepError(ctx, s.lbl, 500, fmt.Errorf("header %s: %w", k, err), false)
			}
			r.Headers[k] = v
		}
	}
	if s.body != nil {
		if r.Body, err = s.body.eval(ctx, in); err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("body: %w", err), false)
		}
	}
	st.reply = r
	return errReplied
}

func toStatus(v any) (int, bool) {
	var n int
	switch v := v.(type) {
	case int:
		n = v
	case float64:
		if v != float64(int(v)) {
			return 0, false
		}
		n = int(v)
	default:
		f, err := strconv.ParseFloat(fmt.Sprint(v), 64)
		if err != nil || f != float64(int(f)) {
			return 0, false
		}
		n = int(f)
	}
	return n, n >= 100 && n <= 599
}

// --- fail

// failStep ends the flow with an *Error (catchable by try).
type failStep struct {
	stepBase
	status  int
	msg     *template
	details *expr
}

func (c *compiler) failStep(b stepBase, n *yaml.Node) step {
	n = deref(n)
	s := &failStep{stepBase: b, status: 500}
	if n.Kind == yaml.ScalarNode {
		if s.msg = c.tmpl(n, b.lbl+" message"); s.msg == nil {
			return nil
		}
		return s
	}
	m := c.l.mapping(c.file, n, "fail", "status", "message", "details")
	if m == nil {
		return nil
	}
	ok := true
	if sn := m.get("status"); sn != nil {
		s.status, ok = c.l.integer(c.file, sn, "fail status", 400, 599)
	}
	if mn := m.get("message"); mn == nil {
		c.errAt(n, "fail needs message")
		ok = false
	} else if s.msg = c.tmpl(mn, b.lbl+" message"); s.msg == nil {
		ok = false
	}
	if dn := m.get("details"); dn != nil {
		if s.details = c.jqExpr(dn, b.lbl+" details"); s.details == nil {
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return s
}

func (s *failStep) run(ctx context.Context, x *execution, st *state) error {
	in := st.input(x.rt)
	msg, err := s.msg.eval(ctx, in)
	if err != nil {
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("message: %w", err), false)
	}
	fe := &Error{Status: s.status, Message: x.rt.redact.string(msg)}
	if s.details != nil {
		if fe.Details, err = s.details.eval(ctx, in); err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("details: %w", err), false)
		}
	}
	return fe
}
