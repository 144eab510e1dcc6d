package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// sqlStep runs one statement, or several in a transaction, through a
// connection of type postgres or mysql. Parameters are named in the text
// (:name) and bound by the driver: the loader turns the text into parts
// around the parameters once, and values never enter the statement.
type sqlStep struct {
	stepBase
	conn  *Connection
	tx    bool
	stmts []*sqlStmt
}

type sqlStmt struct {
	exec   bool
	parts  []string
	names  []string // parameter of each gap between parts
	params map[string]*expr
}

// maxStatements bounds a transaction's statements.
const maxStatements = 32

func (c *compiler) sqlStep(b stepBase, n *yaml.Node) step {
	m := c.l.mapping(c.file, n, "sql", "connection", "query", "exec", "params", "transaction")
	if m == nil {
		return nil
	}
	s := &sqlStep{stepBase: b}
	ok := true
	if cn := m.get("connection"); cn == nil {
		c.errAt(n, "sql needs connection (a policy of type postgres or mysql)")
		ok = false
	} else if conn, cok := c.connection(cn, b.lbl, "postgres", "mysql"); !cok {
		ok = false
	} else {
		s.conn = conn
	}
	if tn := m.get("transaction"); tn != nil {
		for _, k := range []string{"query", "exec", "params"} {
			if m.get(k) != nil {
				c.errAt(m.get(k), "%s goes inside the transaction's statements", k)
				ok = false
			}
		}
		tn = deref(tn)
		if tn.Kind != yaml.SequenceNode || len(tn.Content) == 0 || len(tn.Content) > maxStatements {
			c.errAt(tn, "transaction must be a list of 1 to %d statements {query|exec, params}", maxStatements)
			return nil
		}
		s.tx = true
		for _, sn := range tn.Content {
			sm := c.l.mapping(c.file, sn, "sql statement", "query", "exec", "params")
			if sm == nil {
				ok = false
				continue
			}
			st := c.sqlStatement(sn, sm, b.lbl)
			if st == nil {
				ok = false
				continue
			}
			s.stmts = append(s.stmts, st)
		}
	} else if st := c.sqlStatement(n, m, b.lbl); st == nil {
		ok = false
	} else {
		s.stmts = []*sqlStmt{st}
	}
	if !ok {
		return nil
	}
	return s
}

// sqlStatement reads {query|exec, params} and binds the parameters.
func (c *compiler) sqlStatement(n *yaml.Node, m *fieldMap, lbl string) *sqlStmt {
	qn, en := m.get("query"), m.get("exec")
	if (qn == nil) == (en == nil) {
		c.errAt(n, "a sql statement needs exactly one of query (rows) or exec (affected rows)")
		return nil
	}
	st := &sqlStmt{exec: en != nil, params: map[string]*expr{}}
	tn := qn
	if st.exec {
		tn = en
	}
	text, ok := c.l.str(c.file, tn, "statement")
	if !ok {
		return nil
	}
	if strings.TrimSpace(text) == "" {
		c.errAt(tn, "empty statement")
		return nil
	}
	parts, names, msg := splitNamed(text)
	if msg != "" {
		c.errAt(tn, "statement: %s", msg)
		return nil
	}
	st.parts, st.names = parts, names
	ok = true
	if pn := m.get("params"); pn != nil {
		pm := c.l.mapping(c.file, pn, "params")
		if pm == nil {
			return nil
		}
		for _, k := range pm.keys {
			if !identRE.MatchString(k.Value) {
				c.errAt(k, "parameter name %q must be an identifier", k.Value)
				ok = false
				continue
			}
			if !slices.Contains(names, k.Value) {
				c.errAt(k, "parameter %q is not used in the statement (no :%s)", k.Value, k.Value)
				ok = false
				continue
			}
			e := c.jqExpr(pm.get(k.Value), lbl+" params "+k.Value)
			if e == nil {
				ok = false
				continue
			}
			st.params[k.Value] = e
		}
	}
	var unbound []string
	for _, name := range names {
		if _, found := st.params[name]; !found && !slices.Contains(unbound, name) {
			unbound = append(unbound, name)
		}
	}
	if len(unbound) > 0 {
		sort.Strings(unbound)
		c.errAt(tn, "unbound parameters %s: give each a value in params", ":"+strings.Join(unbound, ", :"))
		ok = false
	}
	if !ok {
		return nil
	}
	return st
}

// splitNamed cuts a statement at its :name parameters, skipping string
// literals, quoted identifiers, comments, dollar-quoted strings and
// PostgreSQL's :: casts. Positional placeholders are refused: a value is
// only ever bound by name.
func splitNamed(q string) (parts, names []string, msg string) {
	var cur strings.Builder
	i := 0
	for i < len(q) {
		ch := q[i]
		switch {
		case ch == '\'' || ch == '"' || ch == '`':
			end := closeQuote(q, i, ch)
			if end < 0 {
				return nil, nil, fmt.Sprintf("unterminated %c quote", ch)
			}
			cur.WriteString(q[i:end])
			i = end
		case ch == '-' && strings.HasPrefix(q[i:], "--"):
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				end = len(q) - i
			}
			cur.WriteString(q[i : i+end])
			i += end
		case ch == '/' && strings.HasPrefix(q[i:], "/*"):
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return nil, nil, "unterminated /* comment"
			}
			cur.WriteString(q[i : i+2+end+2])
			i += 2 + end + 2
		case ch == '$' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9':
			return nil, nil, "positional parameter $" + string(q[i+1]) + "…: name parameters instead (:name)"
		case ch == '$':
			// A dollar-quoted string: $tag$ … $tag$.
			j := i + 1
			for j < len(q) && (isIdentByte(q[j]) && !(j == i+1 && q[j] >= '0' && q[j] <= '9')) {
				j++
			}
			if j < len(q) && q[j] == '$' {
				tag := q[i : j+1]
				end := strings.Index(q[j+1:], tag)
				if end < 0 {
					return nil, nil, "unterminated " + tag + " string"
				}
				cur.WriteString(q[i : j+1+end+len(tag)])
				i = j + 1 + end + len(tag)
			} else {
				cur.WriteByte(ch)
				i++
			}
		case ch == '?':
			return nil, nil, "positional parameter ?: name parameters instead (:name)"
		case ch == ':' && i+1 < len(q) && q[i+1] == ':':
			cur.WriteString("::")
			i += 2
		case ch == ':' && i+1 < len(q) && isIdentStart(q[i+1]):
			j := i + 1
			for j < len(q) && isIdentByte(q[j]) {
				j++
			}
			parts = append(parts, cur.String())
			cur.Reset()
			names = append(names, q[i+1:j])
			i = j
		default:
			cur.WriteByte(ch)
			i++
		}
	}
	parts = append(parts, cur.String())
	return parts, names, ""
}

// closeQuote returns the index after the quote opened at q[i], where a
// doubled quote character is part of the text.
func closeQuote(q string, i int, ch byte) int {
	for j := i + 1; j < len(q); j++ {
		if q[j] == '\\' && ch == '\'' && j+1 < len(q) {
			j++ // MySQL's backslash escapes; harmless for PostgreSQL's standard strings
			continue
		}
		if q[j] == ch {
			if j+1 < len(q) && q[j+1] == ch {
				j++
				continue
			}
			return j + 1
		}
	}
	return -1
}

func isIdentStart(b byte) bool {
	return b == '_' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
}

func isIdentByte(b byte) bool { return isIdentStart(b) || (b >= '0' && b <= '9') }

func (s *sqlStep) run(ctx context.Context, x *execution, st *state) error {
	in := st.input(x.rt)
	stmts := make([]Statement, len(s.stmts))
	for i, ss := range s.stmts {
		args := make([]any, len(ss.names))
		for j, name := range ss.names {
			v, err := ss.params[name].eval(ctx, in)
			if err != nil {
				return x.stepError(ctx, s.lbl, 500, fmt.Errorf("params %s: %w", name, err), false)
			}
			if args[j], err = sqlArg(v); err != nil {
				return x.stepError(ctx, s.lbl, 500, fmt.Errorf("params %s: %w", name, err), false)
			}
		}
		stmts[i] = Statement{Exec: ss.exec, Parts: ss.parts, Args: args}
	}
	if x.rt.conns == nil {
		return x.stepError(ctx, s.lbl, 500, errors.New("no connectors in this runtime"), false)
	}
	res, err := x.rt.conns.SQL(ctx, s.conn, s.tx, stmts)
	if err != nil {
		return x.stepError(ctx, s.lbl, http.StatusBadGateway, fmt.Errorf("sql: %w", err), true)
	}
	var out any
	if s.tx {
		list := make([]any, len(res))
		for i, r := range res {
			list[i] = r
		}
		out = map[string]any{"results": list}
	} else if len(res) == 1 {
		out = res[0]
	}
	v, err := normalizeJSON(out)
	if err != nil {
		return x.stepError(ctx, s.lbl, 500, fmt.Errorf("sql result: %w", err), false)
	}
	st.response = v
	return nil
}

// sqlArg turns a jq value into a plain driver value: arrays and objects
// are sent as JSON text (for json/jsonb columns).
func sqlArg(v any) (any, error) {
	switch v := v.(type) {
	case nil, bool, string, float64:
		return v, nil
	case int:
		return int64(v), nil
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n, nil
		}
		return v.Float64()
	case *big.Int:
		return v.String(), nil
	case map[string]any, []any:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return string(b), nil
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}
