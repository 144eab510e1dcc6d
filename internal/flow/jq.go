package flow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"path"
	"regexp"
	"strings"

	"github.com/itchyny/gojq"
	"gopkg.in/yaml.v3"
)

// jqEnv is what every jq program of a project is compiled with: the
// project's modules and the functions flows may call. Programs get no
// access to the process environment ($ENV, env): a runtime's environment
// holds its own credentials.
type jqEnv struct {
	modules *moduleSet
	fsys    fs.FS
	cfg     *Config
	opts    []gojq.CompilerOption
}

func (e *jqEnv) options() []gojq.CompilerOption {
	if e.opts != nil {
		return e.opts
	}
	e.opts = []gojq.CompilerOption{
		gojq.WithModuleLoader(e.modules),
		gojq.WithEnvironLoader(func() []string { return nil }),
		// static("static/x.json") reads a static file of the project.
		gojq.WithFunction("static", 1, 1, func(_ any, args []any) any {
			return readFileFn(e.fsys, "static", args, StaticDir+"/")
		}),
		// configfile("name") reads a file of the runtime's generic configurations.
		gojq.WithFunction("configfile", 1, 1, func(_ any, args []any) any {
			if e.cfg == nil || e.cfg.Files == nil {
				return errors.New("configfile: no generic configuration files")
			}
			return readFileFn(e.cfg.Files, "configfile", args, "")
		}),
	}
	return e.opts
}

func readFileFn(fsys fs.FS, fn string, args []any, prefix string) any {
	if len(args) != 1 {
		return fmt.Errorf("%s/0 is not defined; call %s(path)", fn, fn)
	}
	p, ok := args[0].(string)
	if !ok {
		return fmt.Errorf("%s: path must be a string", fn)
	}
	if !fs.ValidPath(p) || !strings.HasPrefix(p, prefix) {
		return fmt.Errorf("%s: invalid path %q (want %s…)", fn, p, prefix)
	}
	b, err := fs.ReadFile(fsys, p)
	if err != nil {
		return fmt.Errorf("%s: cannot read %q", fn, p)
	}
	return string(b)
}

// moduleSet is the gojq module loader over the project's jq/ directory.
// Every module is parsed at load (so a broken module is reported even when
// unused) and handed to gojq already parsed.
type moduleSet struct {
	queries map[string]*gojq.Query
	data    map[string]any
}

// LoadModule implements gojq's ModuleLoader for `import "name" as n;`.
func (m *moduleSet) LoadModule(name string) (*gojq.Query, error) {
	if q, ok := m.queries[name]; ok {
		return q, nil
	}
	return nil, fmt.Errorf("module not found: %q (want %s/%s.jq)", name, JQDir, name)
}

// LoadJSON implements gojq's ModuleLoader for `import "name" as $data;`.
func (m *moduleSet) LoadJSON(name string) (any, error) {
	if v, ok := m.data[name]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("JSON data not found: %q (want %s/%s.json)", name, JQDir, name)
}

func (l *loader) loadModules() *moduleSet {
	m := &moduleSet{queries: map[string]*gojq.Query{}, data: map[string]any{}}
	for _, file := range l.listFiles(JQDir, []string{".jq", ".json"}) {
		data, err := l.readFile(file)
		if err != nil {
			l.errAt(file, nil, "cannot read: %v", err)
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(file, JQDir+"/"), path.Ext(file))
		if path.Ext(file) == ".json" {
			if err := l.budget.document(data); err != nil {
				l.errAt(file, nil, "%v", err)
				continue
			}
			v, err := decodeProjectJSON(data)
			if err != nil {
				l.jsonErr(file, err)
				continue
			}
			m.data[name] = v
			continue
		}
		q, err := parseJQ(string(data))
		if err == nil {
			err = l.budget.program(string(data))
		}
		if err != nil {
			line, col := 1, 1
			var pe *gojq.ParseError
			if errors.As(err, &pe) {
				line, col = offsetPos(string(data), tokenStart(pe))
			}
			l.errPos(file, line, col, "invalid jq module: %v", err)
			continue
		}
		m.queries[name] = q
	}
	return m
}

// tokenStart is where the offending token begins: gojq reports the offset
// after reading it.
func tokenStart(pe *gojq.ParseError) int {
	return max(pe.Offset-len(pe.Token), 0)
}

// offsetPos turns a byte offset into a 1-based line and column.
func offsetPos(s string, off int) (line, col int) {
	off = min(max(off, 0), len(s))
	line = 1 + strings.Count(s[:off], "\n")
	col = off - strings.LastIndex(s[:off], "\n")
	return line, col
}

// expr is one compiled jq expression. Literal YAML scalars (numbers,
// booleans, null) and plain strings of templates skip jq altogether.
type expr struct {
	src   string
	code  *gojq.Code
	konst bool
	val   any
	path  []string // set for plain paths like .body.id, evaluated without gojq

	// A structured expression whose leaves are all plain paths or
	// literals is built natively too: keys (objects) or neither (arrays),
	// with the leaves in elems.
	isObj, isArr bool
	keys         []string
	elems        []*expr

	nat *native // the program compiled to Go, when it is in the subset (native.go)
}

// native evaluates without gojq where the expression allows it; ok is
// false when gojq must run (or must give its own error).
func (e *expr) native(in any) (v any, ok bool) {
	switch {
	case e.konst:
		return e.val, true
	case e.path != nil:
		return e.walk(in)
	case e.isObj:
		m := make(map[string]any, len(e.elems))
		for i, x := range e.elems {
			if m[e.keys[i]], ok = x.native(in); !ok {
				return nil, false
			}
		}
		return m, true
	case e.isArr:
		a := make([]any, len(e.elems))
		for i, x := range e.elems {
			if a[i], ok = x.native(in); !ok {
				return nil, false
			}
		}
		return a, true
	}
	return nil, false
}

// nativeShape returns the native form of a structured expression, or nil
// when one of its leaves needs jq.
func nativeShape(n *yaml.Node, depth int) *expr {
	n = deref(n)
	if depth > maxTemplateDepth {
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if v, ok := literal(n); ok {
			return &expr{konst: true, val: v}
		}
		if p := plainPath(n.Value); p != nil {
			return &expr{path: p}
		}
	case yaml.MappingNode:
		e := &expr{isObj: true}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := deref(n.Content[i])
			v := nativeShape(n.Content[i+1], depth+1)
			if k.Kind != yaml.ScalarNode || v == nil {
				return nil
			}
			e.keys = append(e.keys, k.Value)
			e.elems = append(e.elems, v)
		}
		return e
	case yaml.SequenceNode:
		e := &expr{isArr: true}
		for _, item := range n.Content {
			v := nativeShape(item, depth+1)
			if v == nil {
				return nil
			}
			e.elems = append(e.elems, v)
		}
		return e
	}
	return nil
}

// literal decodes a YAML number, boolean or null.
func literal(n *yaml.Node) (any, bool) {
	switch n.Tag {
	case "!!int", "!!float", "!!bool", "!!null":
	default:
		return nil, false
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, false
	}
	if b, ok := v.(*big.Int); ok {
		v = json.Number(b.String())
	}
	return v, true
}

// pathRE matches the plain field paths flows are full of (.body,
// .response.body.id); they are walked directly, which is several times
// cheaper than a gojq run and means the same thing.
var pathRE = regexp.MustCompile(`^\s*(\.|(\.[A-Za-z_][A-Za-z0-9_]*)+)\s*$`)

func plainPath(src string) []string {
	if !pathRE.MatchString(src) {
		return nil
	}
	src = strings.TrimSpace(src)
	if src == "." {
		return []string{}
	}
	return strings.Split(src[1:], ".")
}

// walk follows e.path through in. ok is false when the path meets a
// value that is neither an object nor null: gojq then runs, to give jq's
// own error.
func (e *expr) walk(in any) (v any, ok bool) {
	v = in
	for i := 0; i < len(e.path); i++ {
		switch m, k := v, e.path[i]; m := m.(type) {
		case map[string]any:
			v = m[k]
		case *jqInput:
			if i+1 < len(e.path) {
				// .vars.name, .params.name… without building the
				// object (see member)
				if w, ok := m.member(k, e.path[i+1]); ok {
					v = w
					i++
					continue
				}
			}
			v = m.get(k)
		case nil:
			return nil, true
		default:
			return nil, false
		}
	}
	if _, isInput := v.(*jqInput); isInput {
		return nil, false // `.`: see identity
	}
	return v, true
}

var errNoValue = errors.New("produced no value")

// eval runs the expression and returns its single output. A second output
// is an error rather than silently dropped: `.items[] | .sku` returning
// only the first sku would hide a mistake.
func (e *expr) eval(ctx context.Context, in any) (any, error) {
	if e.konst {
		return e.val, nil
	}
	if e.path != nil || e.isObj || e.isArr {
		if v, ok := e.native(in); ok {
			return v, nil
		}
	}
	if e.nat != nil {
		if v, ok := e.nat.value(in); ok {
			return v, nil
		}
	}
	return e.run(ctx, in)
}

// run is eval through gojq alone.
func (e *expr) run(ctx context.Context, in any) (any, error) {
	iter := e.code.RunWithContext(ctx, jqValue(in))
	v, ok := iter.Next()
	if !ok {
		return nil, errNoValue
	}
	if err, isErr := v.(error); isErr {
		return nil, err
	}
	if w, more := iter.Next(); more {
		if err, isErr := w.(error); isErr {
			return nil, err
		}
		return nil, errors.New("produced more than one value (collect them with [...])")
	}
	return v, nil
}

// template is a string with ${ jq } interpolations. Strings are inserted
// as they are, other values as JSON. `$${` writes a literal `${`.
type template struct {
	konst bool
	s     string
	e     *expr
	parts []tmplPart // when every interpolation is a plain path
}

type tmplPart struct {
	lit  string
	path *expr // nil for a literal
}

func (t *template) eval(ctx context.Context, in any) (string, error) {
	if t.konst {
		return t.s, nil
	}
	if t.parts != nil {
		if s, ok := t.fast(in); ok {
			return s, nil
		}
	}
	v, err := t.e.eval(ctx, in)
	if err != nil {
		return "", err
	}
	s, _ := v.(string)
	return s, nil
}

// fast renders a template of plain paths whose values are all strings;
// anything else goes through jq, which formats values its own way.
func (t *template) fast(in any) (string, bool) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.path == nil {
			b.WriteString(p.lit)
			continue
		}
		v, ok := p.path.walk(in)
		s, isStr := v.(string)
		if !ok || !isStr {
			return "", false
		}
		b.WriteString(s)
	}
	return b.String(), true
}

// compileJQ parses and compiles src, reporting errors at node (shifted by
// the parser's offset when the text maps one-to-one onto the YAML source).
func (c *compiler) compileJQ(n *yaml.Node, src string, what string) *expr {
	q, err := parseJQ(src)
	if err == nil {
		err = c.l.budget.program(src)
	}
	if err != nil {
		c.jqParseErr(n, src, what, err)
		return nil
	}
	code, err := gojq.Compile(q, c.l.env.options()...)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "function not defined") {
			msg += ` (a literal string needs jq quotes, e.g. '"text"')`
		}
		c.errAt(n, "%s: invalid jq: %s", what, msg)
		return nil
	}
	return &expr{src: src, code: code, path: plainPath(src), nat: compileNative(q)}
}

func (c *compiler) jqParseErr(n *yaml.Node, src, what string, err error) {
	line, col := n.Line, n.Column
	var pe *gojq.ParseError
	if errors.As(err, &pe) {
		dl, dc := offsetPos(src, tokenStart(pe))
		switch n.Style {
		case yaml.LiteralStyle, yaml.FoldedStyle:
			// The text starts on the line after the | or > indicator,
			// with the indentation of its first non-blank line removed.
			line += dl
			col = c.blockIndent(n.Line) + dc
		case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
			if dl == 1 {
				col += dc
			} else {
				line += dl - 1
				col = dc
			}
		default:
			if dl == 1 {
				col += dc - 1
			} else {
				line += dl - 1
				col = dc
			}
		}
	}
	c.l.errPos(c.file, line, col, "%s: invalid jq: %v", what, err)
}

// blockIndent is the indentation of a block scalar whose indicator is on
// line (1-based): that of its first non-blank line.
func (c *compiler) blockIndent(line int) int {
	for i := line; i < len(c.lines); i++ {
		l := c.lines[i]
		if strings.TrimSpace(l) == "" {
			continue
		}
		return len(l) - len(strings.TrimLeft(l, " "))
	}
	return 0
}

// jqExpr compiles a node holding a jq expression. A scalar is jq source;
// a mapping or list is a structured template whose leaves are each jq,
// so `body: {id: .response.body.id, total: .vars.total}` reads naturally.
func (c *compiler) jqExpr(n *yaml.Node, what string) *expr {
	n = deref(n)
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!int", "!!float", "!!bool", "!!null":
			var v any
			if err := n.Decode(&v); err != nil {
				c.errAt(n, "%s: %v", what, err)
				return nil
			}
			if f, ok := v.(float64); ok && f == float64(int(f)) && !strings.ContainsAny(n.Value, ".eE") {
				v = int(f)
			}
			if b, ok := v.(*big.Int); ok {
				v = json.Number(b.String())
			}
			return &expr{src: n.Value, konst: true, val: v}
		}
		if strings.TrimSpace(n.Value) == "" {
			c.errAt(n, "%s: empty jq expression", what)
			return nil
		}
		return c.compileJQ(n, n.Value, what)
	}
	src, ok := c.structSource(n, what, 0)
	if !ok {
		return nil
	}
	e := c.compileJQ(n, src, what)
	if e != nil {
		if nat := nativeShape(n, 0); nat != nil {
			e.isObj, e.isArr, e.keys, e.elems = nat.isObj, nat.isArr, nat.keys, nat.elems
		}
	}
	return e
}

const maxTemplateDepth = 32

func (c *compiler) structSource(n *yaml.Node, what string, depth int) (string, bool) {
	n = deref(n)
	if depth > maxTemplateDepth {
		c.errAt(n, "%s: nested too deeply", what)
		return "", false
	}
	var b strings.Builder
	switch n.Kind {
	case yaml.ScalarNode:
		src := n.Value
		if n.Tag == "!!null" {
			src = "null"
		}
		if strings.TrimSpace(src) == "" {
			c.errAt(n, "%s: empty jq expression", what)
			return "", false
		}
		// Parse the leaf alone so an error points at its own position.
		if _, err := parseJQ(src); err != nil {
			c.jqParseErr(n, src, what, err)
			return "", false
		}
		return "(" + src + ")", true
	case yaml.MappingNode:
		b.WriteString("{")
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := deref(n.Content[i])
			if k.Kind != yaml.ScalarNode {
				c.errAt(k, "%s: keys must be strings", what)
				return "", false
			}
			v, vok := c.structSource(n.Content[i+1], what, depth+1)
			ok = ok && vok
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(jqString(k.Value))
			b.WriteString(": ")
			b.WriteString(v)
		}
		b.WriteString("}")
		return b.String(), ok
	case yaml.SequenceNode:
		b.WriteString("[")
		ok := true
		for i, item := range n.Content {
			v, vok := c.structSource(item, what, depth+1)
			ok = ok && vok
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(v)
		}
		b.WriteString("]")
		return b.String(), ok
	}
	c.errAt(n, "%s: expected a jq expression, not %s", what, kindName(n))
	return "", false
}

// jqString quotes s as a jq (JSON) string literal.
func jqString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(buf.String(), "\n")
}

const (
	maxTemplateLen = 64 << 10
	maxBraceTries  = 64
)

// tmpl compiles a string template into one jq string interpolation, so a
// template costs a single program run.
func (c *compiler) tmpl(n *yaml.Node, what string) *template {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		c.errAt(n, "%s must be a string, not %s", what, kindName(n))
		return nil
	}
	s := n.Value
	if !strings.Contains(s, "${") {
		return &template{konst: true, s: s}
	}
	// Finding where an interpolation ends parses candidate prefixes; the
	// bounds keep a hostile file from making that quadratic.
	if len(s) > maxTemplateLen {
		c.errAt(n, "%s: template longer than %d bytes", what, maxTemplateLen)
		return nil
	}
	var src strings.Builder
	var lit strings.Builder
	src.WriteString(`"`)
	flush := func() {
		q := jqString(lit.String())
		src.WriteString(q[1 : len(q)-1])
		lit.Reset()
	}
	hasExpr := false
	allPaths := true
	var parts []tmplPart
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			lit.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			lit.WriteByte(s[i])
			i++
			continue
		}
		// The expression ends at the first } after which the text parses
		// as jq: jq itself contains braces (objects, string interpolation).
		start := i + 2
		end := -1
		var lastErr error
		for j, tries := start, 0; j < len(s) && tries < maxBraceTries; j++ {
			if s[j] != '}' {
				continue
			}
			tries++
			inner := s[start:j]
			if strings.TrimSpace(inner) == "" {
				break
			}
			if _, err := gojq.Parse(inner); err == nil {
				end = j
				break
			} else {
				lastErr = err
			}
		}
		if end < 0 {
			if lastErr != nil {
				c.errAt(n, "%s: invalid jq in ${…} at offset %d: %v", what, i, lastErr)
			} else {
				c.errAt(n, "%s: unterminated or empty ${…} at offset %d", what, i)
			}
			return nil
		}
		parts = append(parts, tmplPart{lit: lit.String()})
		flush()
		src.WriteString(`\(`)
		src.WriteString(s[start:end])
		src.WriteString(`)`)
		if pp := plainPath(s[start:end]); pp != nil {
			parts = append(parts, tmplPart{path: &expr{path: pp}})
		} else {
			allPaths = false
		}
		hasExpr = true
		i = end + 1
	}
	if !hasExpr {
		return &template{konst: true, s: lit.String()}
	}
	parts = append(parts, tmplPart{lit: lit.String()})
	flush()
	src.WriteString(`"`)
	e := c.compileJQ(n, src.String(), what)
	if e == nil {
		return nil
	}
	t := &template{e: e}
	if allPaths {
		t.parts = parts
	}
	return t
}

// decodeProjectJSON decodes a JSON file of the project (a schema, jq
// data) within MaxDocumentDepth.
func decodeProjectJSON(data []byte) (any, error) {
	if err := checkJSONDepth(data); err != nil {
		return nil, err
	}
	return decodeJSON(data)
}

func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

// truthy is jq's notion of truth: everything but false and null.
func truthy(v any) bool {
	return v != nil && v != false
}
