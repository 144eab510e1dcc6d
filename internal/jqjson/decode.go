// Package jqjson decodes JSON documents into the values jq computes with,
// in one pass — the runtime's HTTP bodies and the message triggers'
// payloads — and encodes such values as gojq does, for the runtime's
// answers. It knows nothing of flows.
package jqjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Decode parses one JSON document into the values jq computes with:
// map[string]any, []any, string, bool, nil, and numbers as int (integers
// that fit), *big.Int (larger integers, kept exact) or float64.
//
// It exists because request bodies are on every request's path: a single
// pass straight into those types allocates a third of what encoding/json
// (two passes, json.Number, reflection) does, which shows in the runtime's
// throughput. It accepts exactly the documents encoding/json accepts and
// yields the same values (FuzzDecodeJSON holds it to that), including
// encoding/json's replacement of invalid UTF-8 and unpaired surrogates by
// U+FFFD.
//
// The document is copied into one string, and strings without escapes —
// object keys and values — are slices of it rather than copies each.
func Decode(data []byte) (any, error) {
	p := jsonParser{data: data, src: string(data)}
	stack := stackPool.Get().(*[]any)
	p.stack = (*stack)[:0]
	defer func() {
		// A pooled stack holds no document's values (an error leaves
		// the open arrays' elements on it).
		if cap(p.stack) <= maxPooledScratch {
			clear(p.stack)
			*stack = p.stack[:0]
			stackPool.Put(stack)
		}
	}()
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.data) {
		return nil, p.errorf("trailing data after the JSON value")
	}
	return v, nil
}

// stackPool keeps the parsers' array stacks between documents: grown
// anew for each request body, a stack was three or four allocations of
// every decode in the runtime's profile.
var stackPool = sync.Pool{New: func() any { return new([]any) }}

// maxPooledScratch keeps a rare huge document's scratch from staying
// pinned in a pool (the decoder's stack, the encoder's keys).
const maxPooledScratch = 4096

// maxJSONDepth matches encoding/json's nesting limit.
const maxJSONDepth = 10000

type jsonParser struct {
	data []byte
	src  string // data as a string, which strings are cut from
	pos  int
	// stack holds the elements of the arrays being parsed, so that each
	// array is allocated once, at its final length.
	stack []any
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

var errJSONEnd = errors.New("unexpected end of JSON input")

func (p *jsonParser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	if p.pos >= len(p.data) {
		return nil, errJSONEnd
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		if depth >= maxJSONDepth {
			return nil, p.errorf("nested too deeply")
		}
		return p.object(depth + 1)
	case c == '[':
		if depth >= maxJSONDepth {
			return nil, p.errorf("nested too deeply")
		}
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	default:
		return nil, p.errorf("invalid character %q looking for a value", c)
	}
}

func (p *jsonParser) literal(word string) error {
	if len(p.data)-p.pos < len(word) {
		return errJSONEnd
	}
	if string(p.data[p.pos:p.pos+len(word)]) != word {
		return p.errorf("invalid literal, want %s", word)
	}
	p.pos += len(word)
	return nil
}

func (p *jsonParser) object(depth int) (any, error) {
	p.pos++ // {
	m := map[string]any{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return m, nil
	}
	for {
		p.space()
		if p.pos >= len(p.data) {
			return nil, errJSONEnd
		}
		if p.data[p.pos] != '"' {
			return nil, p.errorf("invalid character %q looking for an object key", p.data[p.pos])
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.data) {
			return nil, errJSONEnd
		}
		if p.data[p.pos] != ':' {
			return nil, p.errorf("invalid character %q after an object key", p.data[p.pos])
		}
		p.pos++
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.space()
		if p.pos >= len(p.data) {
			return nil, errJSONEnd
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return m, nil
		default:
			return nil, p.errorf("invalid character %q after an object value", p.data[p.pos])
		}
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	p.pos++ // [
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return []any{}, nil
	}
	mark := len(p.stack)
	for {
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.stack = append(p.stack, v)
		p.space()
		if p.pos >= len(p.data) {
			return nil, errJSONEnd
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			a := make([]any, len(p.stack)-mark)
			copy(a, p.stack[mark:])
			clear(p.stack[mark:])
			p.stack = p.stack[:mark]
			return a, nil
		default:
			return nil, p.errorf("invalid character %q after an array element", p.data[p.pos])
		}
	}
}

// number scans the JSON number grammar and converts as gojq would.
func (p *jsonParser) number() (any, error) {
	start := p.pos
	d := p.data
	if d[p.pos] == '-' {
		p.pos++
	}
	if p.pos >= len(d) {
		return nil, errJSONEnd
	}
	switch {
	case d[p.pos] == '0':
		p.pos++
	case d[p.pos] >= '1' && d[p.pos] <= '9':
		for p.pos < len(d) && d[p.pos] >= '0' && d[p.pos] <= '9' {
			p.pos++
		}
	default:
		return nil, p.errorf("invalid character %q in numeric literal", d[p.pos])
	}
	integer := true
	if p.pos < len(d) && d[p.pos] == '.' {
		integer = false
		p.pos++
		if err := p.digits(); err != nil {
			return nil, err
		}
	}
	if p.pos < len(d) && (d[p.pos] == 'e' || d[p.pos] == 'E') {
		integer = false
		p.pos++
		if p.pos < len(d) && (d[p.pos] == '+' || d[p.pos] == '-') {
			p.pos++
		}
		if err := p.digits(); err != nil {
			return nil, err
		}
	}
	s := p.src[start:p.pos] // a slice of the document's copy, not one of its own
	if integer {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil && int64(int(i)) == i {
			return int(i), nil
		}
		b, _ := new(big.Int).SetString(s, 10)
		return b, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// Beyond float64: keep the text; gojq reads json.Number.
		return json.Number(s), nil
	}
	return f, nil
}

func (p *jsonParser) digits() error {
	if p.pos >= len(p.data) {
		return errJSONEnd
	}
	if c := p.data[p.pos]; c < '0' || c > '9' {
		return p.errorf("invalid character %q in numeric literal", c)
	}
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		p.pos++
	}
	return nil
}

// str parses a string; the fast path (no escapes, valid UTF-8) is a slice
// of the document's string.
func (p *jsonParser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	d := p.data
	for i := start; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return p.src[start:i], nil
		case c == '\\':
			return p.strSlow(start)
		case c >= utf8.RuneSelf:
			// Valid UTF-8 stays as it is; anything else is replaced, on
			// the slow path.
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				return p.strSlow(start)
			}
			i += size - 1
		case c < 0x20:
			p.pos = i
			return "", p.errorf("invalid control character in string")
		}
	}
	p.pos = len(d)
	return "", errJSONEnd
}

func (p *jsonParser) strSlow(start int) (string, error) {
	d := p.data
	buf := make([]byte, 0, len(d)-start)
	i := start
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(buf), nil
		case c < 0x20:
			p.pos = i
			return "", p.errorf("invalid control character in string")
		case c == '\\':
			if i+1 >= len(d) {
				return "", errJSONEnd
			}
			i++
			switch d[i] {
			case '"', '\\', '/':
				buf = append(buf, d[i])
				i++
			case 'b':
				buf, i = append(buf, '\b'), i+1
			case 'f':
				buf, i = append(buf, '\f'), i+1
			case 'n':
				buf, i = append(buf, '\n'), i+1
			case 'r':
				buf, i = append(buf, '\r'), i+1
			case 't':
				buf, i = append(buf, '\t'), i+1
			case 'u':
				r, ok := hex4(d, i+1)
				if !ok {
					p.pos = i
					if i+5 > len(d) {
						return "", errJSONEnd
					}
					return "", p.errorf("invalid \\u escape in string")
				}
				i += 5
				if utf16.IsSurrogate(r) {
					// A pair makes one rune; anything else is
					// replaced, as encoding/json does.
					r2, ok := rune(0), false
					if i+1 < len(d) && d[i] == '\\' && d[i+1] == 'u' {
						r2, ok = hex4(d, i+2)
					}
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				p.pos = i
				return "", p.errorf("invalid escape character %q in string", d[i])
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, d[i:i+size]...)
			}
			i += size
		}
	}
	p.pos = len(d)
	return "", errJSONEnd
}

func hex4(d []byte, at int) (rune, bool) {
	if at+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
