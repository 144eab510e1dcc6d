package flow

import (
	"fmt"
	"reflect"

	"github.com/itchyny/gojq"
	"gopkg.in/yaml.v3"
)

// Limits on what one project may ask of the loader. A BAR is validated by
// the control plane on upload and loaded again by every runtime replica,
// so a small file that costs gigabytes to compile would take both down:
// gojq's compiler recurses once per level of a program (about 4 KB of
// stack each), and a 1.3 KB BAR holding a jq program nested 500,000 deep
// overflowed the goroutine stack, which no recover can catch. The limits
// are far above what a real flow uses and keep the worst case in a few
// megabytes (TestLoadCostIsBounded measures it).
const (
	// MaxJQProgramSize bounds the text of one jq program: an expression
	// of a flow, a template's interpolations together, or a module.
	MaxJQProgramSize = 64 << 10
	// MaxJQDepth bounds the nesting of a parsed jq program, counted in
	// the parser's query nodes: brackets, parentheses, if/try/reduce, and
	// each operator of a chain (`a | b | c` is three deep), which is how
	// deep gojq's compiler recurses.
	MaxJQDepth = 1000
	// MaxProjectJQ bounds the jq source of a whole project (expressions
	// and modules together): compiled programs stay in memory for as long
	// as the project is loaded.
	MaxProjectJQ = 1 << 20
	// MaxDocumentDepth bounds the nesting of YAML and JSON documents of a
	// project: flows, schemas, jq data, OpenAPI documents and fixtures.
	MaxDocumentDepth = 128
	// MaxDocumentTokens bounds the structural characters (, : - [ { and
	// line breaks) of one YAML or JSON document, counted before it is
	// parsed: the parsers spend about 200 bytes per node, so a 1 MB list
	// of numbers costs 100 MB, and the count bounds the nodes.
	MaxDocumentTokens = 24_000
	// MaxProjectTokens bounds the same count over all documents of a
	// project, which bounds what its compiled flows keep.
	MaxProjectTokens = 48_000
)

// budget is what one Load has spent of the project-wide limits.
type budget struct {
	tokens int
	jq     int
}

// document charges one YAML or JSON document to the budget before it is
// parsed.
func (b *budget) document(data []byte) error {
	n := 0
	for _, c := range data {
		switch c {
		case ',', ':', '-', '[', '{', '\n':
			n++
		}
	}
	if n > MaxDocumentTokens {
		return fmt.Errorf("the document has %d structural characters (, : - [ { and lines), the limit is %d: it is too large to be a project file", n, MaxDocumentTokens)
	}
	b.tokens += n
	if b.tokens > MaxProjectTokens {
		return fmt.Errorf("the project's YAML and JSON documents have more than %d structural characters (, : - [ { and lines) together", MaxProjectTokens)
	}
	return nil
}

// program charges one jq program to the budget.
func (b *budget) program(src string) error {
	b.jq += len(src)
	if b.jq > MaxProjectJQ {
		return &jqLimitError{fmt.Sprintf("the project's jq programs are more than %d bytes together", MaxProjectJQ)}
	}
	return nil
}

// jqLimitError is a jq program over one of the limits; it is reported at
// the program's position like a parse error.
type jqLimitError struct{ msg string }

func (e *jqLimitError) Error() string { return e.msg }

// parseJQ parses src within the limits: the size is checked before the
// parser runs (its cost grows with the text), the depth before anything
// compiles the result.
func parseJQ(src string) (*gojq.Query, error) {
	if len(src) > MaxJQProgramSize {
		return nil, &jqLimitError{fmt.Sprintf("the program is %d bytes, the limit is %d (move parts into jq modules and functions)", len(src), MaxJQProgramSize)}
	}
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, err
	}
	if jqDepth(reflect.ValueOf(q), 0) > MaxJQDepth {
		return nil, &jqLimitError{fmt.Sprintf("the program is nested more than %d deep (split it into functions)", MaxJQDepth)}
	}
	return q, nil
}

var queryType = reflect.TypeOf((*gojq.Query)(nil))

// jqDepth is the number of *gojq.Query nodes on the deepest path below v,
// walked generically over gojq's AST so every construct counts. It stops
// descending past MaxJQDepth, so its own recursion stays bounded too; the
// walk visits each node once, and a program within MaxJQProgramSize has
// few enough of them.
func jqDepth(v reflect.Value, depth int) int {
	if depth > MaxJQDepth {
		return depth
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return depth
		}
		if v.Type() == queryType {
			depth++
		}
		return jqDepth(v.Elem(), depth)
	case reflect.Struct:
		deepest := depth
		for i := range v.NumField() {
			deepest = max(deepest, jqDepth(v.Field(i), depth))
		}
		return deepest
	case reflect.Slice, reflect.Array:
		deepest := depth
		for i := range v.Len() {
			deepest = max(deepest, jqDepth(v.Index(i), depth))
		}
		return deepest
	}
	return depth
}

// yamlTooDeep returns the first node (in document order) that lies more
// than MaxDocumentDepth levels below root, aliases followed, or nil. A
// document's height is computed once per node, so nested aliases cost no
// more than the nodes they name.
func yamlTooDeep(root *yaml.Node) *yaml.Node {
	heights := map[*yaml.Node]int{}
	var height func(n *yaml.Node, depth int) int
	height = func(n *yaml.Node, depth int) int {
		if h, ok := heights[n]; ok {
			return h
		}
		if depth > MaxDocumentDepth {
			return MaxDocumentDepth + 1
		}
		heights[n] = MaxDocumentDepth + 1 // an alias cycle is too deep
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			// An alias stands where its anchor's node would be.
			h := height(n.Alias, depth)
			heights[n] = h
			return h
		}
		h := 0
		for _, c := range n.Content {
			h = max(h, height(c, depth+1))
		}
		h = min(h+1, MaxDocumentDepth+1)
		heights[n] = h
		return h
	}
	if height(root, 0) <= MaxDocumentDepth {
		return nil
	}
	// Follow the tallest child down to the level that breaks the limit.
	n := root
	for depth := 1; ; depth++ {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if depth > MaxDocumentDepth || len(n.Content) == 0 {
			return n
		}
		next := n.Content[0]
		for _, c := range n.Content {
			if heights[c]+depth > MaxDocumentDepth {
				next = c
				break
			}
		}
		n = next
	}
}

// jsonDepthError is a JSON document nested deeper than MaxDocumentDepth.
type jsonDepthError struct{ Line, Column int }

func (e *jsonDepthError) Error() string {
	return fmt.Sprintf("line %d: nested more than %d deep", e.Line, MaxDocumentDepth)
}

// checkJSONDepth scans data for nesting deeper than MaxDocumentDepth
// before a decoder or schema compiler recurses into it (encoding/json
// allows 10,000 levels; the schema compiler's cost grows much faster than
// the depth). It only counts brackets outside strings: syntax is the
// decoder's business.
func checkJSONDepth(data []byte) error {
	depth, line, col := 0, 1, 0
	inString, escaped := false, false
	for _, c := range data {
		col++
		switch {
		case c == '\n':
			line, col = line+1, 0
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > MaxDocumentDepth {
				return &jsonDepthError{Line: line, Column: col}
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return nil
}
