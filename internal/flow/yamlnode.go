package flow

import (
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Flow files are decoded from yaml.Node trees by hand rather than into
// structs, so every error can name the exact line and column, unknown
// fields are refused, and a jq expression keeps the position of its text.

// fieldMap is a YAML mapping's fields in document order.
type fieldMap struct {
	keys []*yaml.Node
	vals map[string]*yaml.Node
}

func (m *fieldMap) get(k string) *yaml.Node { return m.vals[k] }

func deref(n *yaml.Node) *yaml.Node {
	// Aliases are resolved once; an alias of an alias is refused by
	// yaml.v3's own cycle checks before we see it.
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// mapping checks that n is a mapping whose keys are all in allowed and
// unique, reporting unknown fields by name.
func (l *loader) mapping(file string, n *yaml.Node, what string, allowed ...string) *fieldMap {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		l.errAt(file, n, "%s must be a mapping, not %s", what, kindName(n))
		return nil
	}
	m := &fieldMap{vals: map[string]*yaml.Node{}}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.errAt(file, k, "%s: field names must be scalars", what)
			ok = false
			continue
		}
		if k.Value == "<<" {
			l.errAt(file, k, "%s: YAML merge keys are not supported", what)
			ok = false
			continue
		}
		if _, dup := m.vals[k.Value]; dup {
			l.errAt(file, k, "%s: duplicate field %q", what, k.Value)
			ok = false
			continue
		}
		if allowed != nil && !contains(allowed, k.Value) {
			l.errAt(file, k, "unknown field %q in %s (want %s)", k.Value, what, strings.Join(allowed, ", "))
			ok = false
			continue
		}
		m.keys = append(m.keys, k)
		m.vals[k.Value] = deref(v)
	}
	if !ok && allowed == nil {
		return nil
	}
	return m
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (l *loader) str(file string, n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errAt(file, n, "%s must be a string, not %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (l *loader) integer(file string, n *yaml.Node, what string, lo, hi int) (int, bool) {
	n = deref(n)
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		l.errAt(file, n, "%s must be an integer", what)
		return 0, false
	}
	if v < lo || v > hi {
		l.errAt(file, n, "%s must be between %d and %d", what, lo, hi)
		return 0, false
	}
	return v, true
}

func (l *loader) boolean(file string, n *yaml.Node, what string) (bool, bool) {
	n = deref(n)
	var v bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&v) != nil {
		l.errAt(file, n, "%s must be true or false", what)
		return false, false
	}
	return v, true
}

// duration accepts Go durations ("1.5s", "250ms"); a bare number is refused
// because its unit would be a guess.
func (l *loader) duration(file string, n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := l.str(file, n, what)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		l.errAt(file, n, "%s must be a positive duration like 500ms or 2s, not %q", what, s)
		return 0, false
	}
	if d > 24*time.Hour {
		l.errAt(file, n, "%s must be at most 24h", what)
		return 0, false
	}
	return d, true
}
