package jqjson

import (
	"encoding/json"
	"math"
	"math/big"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Append appends the JSON encoding of v, a jq value, to dst, byte for byte
// as gojq.Marshal writes it (jq's conventions: object keys sorted, NaN as
// null, infinities as ±math.MaxFloat64, \b and \f in strings, no HTML
// escaping). ok is false, and dst is returned unchanged, when v holds a
// type that is not a jq value; the caller then encodes it another way.
//
// It exists because every flow answer is encoded: gojq's encoder writes
// through an interface, makes a slice of keys for each object and a new
// buffer for each answer, which showed in the runtime's profiles; here
// the keys of all objects share one scratch slice and the caller chooses
// the buffer.
func Append(dst []byte, v any) (out []byte, ok bool) {
	keys := keysPool.Get().(*[]string)
	e := encoder{b: dst, keys: (*keys)[:0]}
	ok = e.value(v, 0)
	if cap(e.keys) <= maxPooledScratch {
		clear(e.keys) // a failed encoding leaves its open objects' keys
		*keys = e.keys[:0]
		keysPool.Put(keys)
	}
	if !ok {
		return dst, false
	}
	return e.b, true
}

// keysPool keeps the encoders' key scratch between answers (grown anew,
// it was three allocations of the runtime's light answer).
var keysPool = sync.Pool{New: func() any { return new([]string) }}

type encoder struct {
	b    []byte
	keys []string // scratch for the keys of the objects being written
}

// maxEncodeDepth stops a value that contains itself (only Go code can
// make one) from overflowing the stack; gojq's encoder would recurse.
const maxEncodeDepth = 10000

func (e *encoder) value(v any, depth int) bool {
	if depth > maxEncodeDepth {
		return false
	}
	switch v := v.(type) {
	case nil:
		e.b = append(e.b, "null"...)
	case bool:
		e.b = strconv.AppendBool(e.b, v)
	case int:
		e.b = strconv.AppendInt(e.b, int64(v), 10)
	case float64:
		e.float(v)
	case string:
		e.str(v)
	case []any:
		e.b = append(e.b, '[')
		for i, x := range v {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			if !e.value(x, depth+1) {
				return false
			}
		}
		e.b = append(e.b, ']')
	case map[string]any:
		return e.object(v, depth)
	case *big.Int:
		e.b = v.Append(e.b, 10)
	case json.Number:
		e.b = append(e.b, v.String()...)
	default:
		return false
	}
	return true
}

func (e *encoder) object(m map[string]any, depth int) bool {
	// A small object's keys are sorted on the stack: growing the shared
	// scratch slice from nothing was three allocations per answer.
	var small [8]string
	var keys []string
	mark := len(e.keys)
	if len(m) <= len(small) {
		keys = small[:0]
		for k := range m {
			keys = append(keys, k)
		}
	} else {
		for k := range m {
			e.keys = append(e.keys, k)
		}
		keys = e.keys[mark:]
	}
	slices.Sort(keys) // strings.Compare's order, as gojq sorts them
	e.b = append(e.b, '{')
	for i, k := range keys {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.str(k)
		e.b = append(e.b, ':')
		if !e.value(m[k], depth+1) {
			return false
		}
	}
	e.b = append(e.b, '}')
	clear(e.keys[mark:])
	e.keys = e.keys[:mark]
	return true
}

// float writes f as gojq does (encoding/json's format, NaN as null,
// infinities clamped).
func (e *encoder) float(f float64) {
	if math.IsNaN(f) {
		e.b = append(e.b, "null"...)
		return
	}
	f = min(max(f, -math.MaxFloat64), math.MaxFloat64)
	format := byte('f')
	if x := math.Abs(f); x != 0 && x < 1e-6 || x >= 1e21 {
		format = 'e'
	}
	start := len(e.b)
	e.b = strconv.AppendFloat(e.b, f, format, -1, 64)
	if format == 'e' {
		// e-09 as e-9
		b := e.b[start:]
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			e.b = e.b[:len(e.b)-1]
		}
	}
}

const hexDigits = "0123456789abcdef"

// str writes s quoted as gojq does: \b \f \n \r \t and \u00XX for other
// control characters, invalid UTF-8 as \ufffd, everything else as is.
func (e *encoder) str(s string) {
	e.b = append(e.b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if ' ' <= c && c <= '~' && c != '"' && c != '\\' {
				i++
				continue
			}
			e.b = append(e.b, s[start:i]...)
			switch c {
			case '"':
				e.b = append(e.b, `\"`...)
			case '\\':
				e.b = append(e.b, `\\`...)
			case '\b':
				e.b = append(e.b, `\b`...)
			case '\f':
				e.b = append(e.b, `\f`...)
			case '\n':
				e.b = append(e.b, `\n`...)
			case '\r':
				e.b = append(e.b, `\r`...)
			case '\t':
				e.b = append(e.b, `\t`...)
			default:
				e.b = append(e.b, `\u00`...)
				e.b = append(e.b, hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			e.b = append(e.b, s[start:i]...)
			e.b = append(e.b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	e.b = append(e.b, s[start:]...)
	e.b = append(e.b, '"')
}
