package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"path"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"
)

// schemaBase is the URL the project's schemas live under, so relative
// $refs between them resolve inside the project and nowhere else.
const schemaBase = "sluice-project:///"

// schemaSet compiles the project's JSON Schemas, each once.
type schemaSet struct {
	fsys     fs.FS
	compiler *jsonschema.Compiler
	compiled map[string]*jsonschema.Schema
	failed   map[string]error
	docs     map[string]any // the decoded documents, for their fast forms
	fast     map[string]*fastSchema
}

func newSchemaSet(l *loader) *schemaSet {
	c := jsonschema.NewCompiler()
	c.UseLoader(projectLoader{l})
	c.AssertFormat()
	return &schemaSet{fsys: l.fsys, compiler: c, compiled: map[string]*jsonschema.Schema{}, failed: map[string]error{},
		docs: map[string]any{}, fast: map[string]*fastSchema{}}
}

// projectLoader serves $refs from the project's files only: a schema that
// refers to the network would make loading depend on it. Files are read
// within the loader's size limit and charged to its budget.
type projectLoader struct{ l *loader }

func (p projectLoader) Load(raw string) (any, error) {
	if !strings.HasPrefix(raw, schemaBase) {
		return nil, fmt.Errorf("only references inside the project are allowed, not %q", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	name := strings.TrimPrefix(u.Path, "/")
	if !fs.ValidPath(name) {
		return nil, fmt.Errorf("invalid schema path %q", name)
	}
	data, err := p.l.readFile(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no file %s in the project", name)
		}
		return nil, err
	}
	if err := p.l.budget.document(data); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if ext := path.Ext(name); ext == ".yaml" || ext == ".yml" {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("%s: invalid YAML: %w", name, err)
		}
		if deep := yamlTooDeep(&doc); deep != nil {
			return nil, fmt.Errorf("%s: line %d: nested more than %d deep", name, deep.Line, MaxDocumentDepth)
		}
		var v any
		if err := doc.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: invalid YAML: %w", name, err)
		}
		v, err := normalizeJSON(v)
		if err == nil && p.l.schemas != nil {
			p.l.schemas.docs[name] = v
		}
		return v, err
	}
	v, err := decodeProjectJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", name, err)
	}
	if p.l.schemas != nil {
		p.l.schemas.docs[name] = v
	}
	return v, nil
}

func (s *schemaSet) get(name string) (*jsonschema.Schema, error) {
	if sch, ok := s.compiled[name]; ok {
		return sch, nil
	}
	if err := s.failed[name]; err != nil {
		return nil, err
	}
	sch, err := s.compiler.Compile(schemaBase + name)
	if err != nil {
		err = errors.New(strings.ReplaceAll(err.Error(), schemaBase, ""))
		s.failed[name] = err
		return nil, err
	}
	s.compiled[name] = sch
	if doc, ok := s.docs[name]; ok {
		s.fast[name] = compileFastSchema(doc, 0)
	}
	return sch, nil
}

// checkAll compiles every schema of the project, used or not, so a broken
// one is reported at build time rather than when a flow starts using it.
func (l *loader) checkSchemas() {
	for _, f := range l.listFiles(SchemasDir, []string{".json", ".yaml", ".yml"}) {
		// Nesting is checked before the schema compiler sees the file, so
		// the error names the line; the loader checks again for files
		// outside schemas/ that a $ref names.
		if path.Ext(f) == ".json" {
			if data, err := l.readFile(f); err == nil {
				if err := checkJSONDepth(data); err != nil {
					l.jsonErr(f, err)
					continue
				}
			}
		}
		if _, err := l.schemas.get(f); err != nil {
			l.errAt(f, nil, "invalid JSON Schema: %v", err)
		}
	}
}

// validateStep checks a value (the body by default) against a schema.
type validateStep struct {
	stepBase
	name   string
	schema *jsonschema.Schema
	fast   *fastSchema // nil when the schema is outside its subset
	value  *expr
	status int
}

func (c *compiler) validateStep(b stepBase, n *yaml.Node) step {
	n = deref(n)
	s := &validateStep{stepBase: b, status: 400}
	sn := n
	if n.Kind == yaml.MappingNode {
		m := c.l.mapping(c.file, n, "validate", "schema", "value", "status")
		if m == nil {
			return nil
		}
		if sn = m.get("schema"); sn == nil {
			c.errAt(n, "validate needs schema (a path like %s/order.json)", SchemasDir)
			return nil
		}
		if vn := m.get("value"); vn != nil {
			if s.value = c.jqExpr(vn, b.lbl+" value"); s.value == nil {
				return nil
			}
		}
		if st := m.get("status"); st != nil {
			var ok bool
			if s.status, ok = c.l.integer(c.file, st, "validate status", 400, 599); !ok {
				return nil
			}
		}
	}
	name, ok := c.l.str(c.file, sn, "schema")
	if !ok {
		return nil
	}
	name = strings.TrimPrefix(name, "./")
	if !fs.ValidPath(name) || !strings.HasPrefix(name, SchemasDir+"/") {
		c.errAt(sn, "schema %q must be a path under %s/", name, SchemasDir)
		return nil
	}
	if _, err := fs.Stat(c.l.fsys, name); err != nil {
		c.errAt(sn, "schema %s: no such file in the project", name)
		return nil
	}
	sch, err := c.l.schemas.get(name)
	if err != nil {
		c.errAt(sn, "schema %s: %v", name, err)
		return nil
	}
	s.name, s.schema, s.fast = name, sch, c.l.schemas.fast[name]
	return s
}

var schemaPrinter = message.NewPrinter(language.English)

// maxViolations bounds the details of a failed validation; a client
// sending garbage needs the first problems, not thousands.
const maxViolations = 20

func (s *validateStep) run(ctx context.Context, x *execution, st *state) error {
	v := st.body
	if s.value != nil {
		var err error
		if v, err = s.value.eval(ctx, st.input(x.rt)); err != nil {
			return x.stepError(ctx, s.lbl, 500, fmt.Errorf("value: %w", err), false)
		}
	}
	if s.fast != nil && s.fast.valid(v) {
		return nil
	}
	err := s.schema.Validate(schemaValue(v))
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return x.stepError(ctx, s.lbl, 500, err, false)
	}
	var details []any
	collectViolations(ve, x.rt.redact, &details)
	msg := fmt.Sprintf("does not match schema %s", s.name)
	if len(details) > 0 {
		d := details[0].(map[string]any)
		msg += fmt.Sprintf(": at %s: %s", d["path"], d["message"])
	}
	return &Error{Status: s.status, Message: msg, Details: details, Step: s.lbl}
}

func collectViolations(e *jsonschema.ValidationError, r *redactor, out *[]any) {
	if len(*out) >= maxViolations {
		return
	}
	if len(e.Causes) == 0 {
		*out = append(*out, map[string]any{
			"path":    "/" + strings.Join(e.InstanceLocation, "/"),
			"message": r.string(e.ErrorKind.LocalizedString(schemaPrinter)),
		})
		return
	}
	for _, c := range e.Causes {
		collectViolations(c, r, out)
	}
}

// schemaValue converts what jsonschema does not know (gojq's *big.Int)
// into json.Number; values without one are returned as they are.
func schemaValue(v any) any {
	if !hasBigInt(v) {
		return v
	}
	switch v := v.(type) {
	case *big.Int:
		return json.Number(v.String())
	case map[string]any:
		c := make(map[string]any, len(v))
		for k, x := range v {
			c[k] = schemaValue(x)
		}
		return c
	case []any:
		c := make([]any, len(v))
		for i, x := range v {
			c[i] = schemaValue(x)
		}
		return c
	}
	return v
}

func hasBigInt(v any) bool {
	switch v := v.(type) {
	case *big.Int:
		return true
	case map[string]any:
		for _, x := range v {
			if hasBigInt(x) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if hasBigInt(x) {
				return true
			}
		}
	}
	return false
}
