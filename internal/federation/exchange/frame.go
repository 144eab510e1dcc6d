// Package exchange is the wire codec of Gravitee's exchange protocol, v1,
// as its public description gives it: binary WebSocket frames of the form
// `t:COMMAND|REPLY;;et:TYPE;;e:{json}`, command envelopes
// `{"id","type","payload"}`, reply envelopes
// `{"commandId","type","commandStatus","errorDetails","payload"}`, and the
// payloads of the commands the integration controller and a federation
// agent exchange. It owns shapes and their checks only: it opens no
// connection and decides nothing about what a command does (that is the
// federation package's job).
//
// Everything here reads input from a controller that may be broken or
// hostile; the decoder never panics (a fuzz target holds it to that) and
// says what is wrong in errors a reply can carry.
package exchange

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Kind is the first field of a frame: what the exchange is.
type Kind string

// The kinds of exchange a frame carries.
const (
	KindCommand Kind = "COMMAND"
	KindReply   Kind = "REPLY"
)

// DefaultMaxFrameSize is the largest frame the decoder accepts when the
// caller gives no limit. A controller's commands are small (ids and
// subscription metadata); 1 MiB leaves room for anything legitimate.
const DefaultMaxFrameSize = 1 << 20

// Field prefixes and the separator of the v1 framing.
const (
	prefixKind     = "t:"
	prefixType     = "et:"
	prefixExchange = "e:"
	separator      = ";;"
)

// Frame is one decoded frame: its kind, its exchange type, and the JSON of
// the exchange (an envelope, not yet decoded).
type Frame struct {
	Kind Kind
	Type string
	Body []byte
}

// Encode writes a frame in the v1 framing. The exchange part comes last,
// so a ";;" inside its JSON is harmless to a reader that, as this one and
// Gravitee's do, takes everything after "e:" as the exchange.
func (f Frame) Encode() []byte {
	var b bytes.Buffer
	b.Grow(len(prefixKind) + len(f.Kind) + len(separator) + len(prefixType) + len(f.Type) + len(separator) + len(prefixExchange) + len(f.Body))
	b.WriteString(prefixKind)
	b.WriteString(string(f.Kind))
	b.WriteString(separator)
	b.WriteString(prefixType)
	b.WriteString(f.Type)
	b.WriteString(separator)
	b.WriteString(prefixExchange)
	b.Write(f.Body)
	return b.Bytes()
}

// FrameError is a frame the decoder refuses. It keeps what could be read
// of the frame before the problem, so the receiver can answer a command
// it can name (CommandID set) with an ERROR reply instead of dropping it.
type FrameError struct {
	Kind      Kind   // "" when the frame's kind could not be read
	Type      string // exchange type, when read
	CommandID string // the command's id, when the frame is a command and its id could be read
	Reason    string // what is wrong, for logs and errorDetails
}

func (e *FrameError) Error() string { return "exchange: " + e.Reason }

// TooLargeError is a frame over the size limit.
type TooLargeError struct {
	FrameError
	Size, Limit int
}

// DecodeFrame splits a frame into its fields. Fields are read in any order
// until "e:", which runs to the end of the frame; fields it does not know
// are skipped, as Gravitee's reader does, so a newer controller's extra
// fields do not break an older agent. size is the frame's full length when
// b holds only its first bytes (an oversized frame whose rest was
// discarded); pass len(b) otherwise. limit <= 0 means DefaultMaxFrameSize.
func DecodeFrame(b []byte, size, limit int) (Frame, error) {
	if limit <= 0 {
		limit = DefaultMaxFrameSize
	}
	if size < len(b) {
		size = len(b)
	}
	if size > limit {
		// Learn what can be learnt from the first bytes, to name the
		// refused command in the reply.
		head := b
		if len(head) > limit {
			head = head[:limit]
		}
		fe := peek(head)
		fe.Reason = fmt.Sprintf("frame of %d bytes is over the limit of %d bytes", size, limit)
		return Frame{}, &TooLargeError{FrameError: fe, Size: size, Limit: limit}
	}
	if len(b) == 0 {
		return Frame{}, &FrameError{Reason: "empty frame"}
	}
	if !utf8.Valid(b) {
		return Frame{}, &FrameError{Reason: "frame is not valid UTF-8"}
	}
	var f Frame
	rest := string(b)
	sawKind, sawExchange := false, false
	for rest != "" {
		var field string
		if strings.HasPrefix(rest, prefixExchange) {
			f.Body = []byte(strings.TrimSpace(rest[len(prefixExchange):]))
			sawExchange = true
			break
		}
		field, rest, _ = strings.Cut(rest, separator)
		switch {
		case strings.HasPrefix(field, prefixKind):
			f.Kind = Kind(strings.TrimSpace(field[len(prefixKind):]))
			sawKind = true
		case strings.HasPrefix(field, prefixType):
			f.Type = strings.TrimSpace(field[len(prefixType):])
		}
	}
	switch {
	case !sawKind:
		return Frame{}, &FrameError{Type: f.Type, Reason: "frame has no kind (t:COMMAND or t:REPLY)"}
	case f.Kind != KindCommand && f.Kind != KindReply:
		return Frame{}, &FrameError{Type: f.Type, Reason: fmt.Sprintf("frame kind %q is neither COMMAND nor REPLY", truncate(string(f.Kind)))}
	case f.Type == "":
		fe := &FrameError{Kind: f.Kind, Reason: "frame has no exchange type (et:)"}
		fe.CommandID = idOf(f.Kind, f.Body)
		return Frame{}, fe
	case !sawExchange || len(f.Body) == 0:
		return Frame{}, &FrameError{Kind: f.Kind, Type: f.Type, Reason: "frame has no exchange (e:{…})"}
	}
	return f, nil
}

// peek reads kind, type and command id from the first bytes of a frame,
// as far as they go; it never fails.
func peek(head []byte) FrameError {
	var fe FrameError
	rest := string(head)
	for rest != "" && !strings.HasPrefix(rest, prefixExchange) {
		var field string
		var found bool
		field, rest, found = strings.Cut(rest, separator)
		if !found {
			return fe // the field runs past the bytes we have
		}
		switch {
		case strings.HasPrefix(field, prefixKind):
			fe.Kind = Kind(strings.TrimSpace(field[len(prefixKind):]))
		case strings.HasPrefix(field, prefixType):
			fe.Type = strings.TrimSpace(field[len(prefixType):])
		}
	}
	if fe.Kind != KindCommand && fe.Kind != KindReply {
		fe.Kind = ""
		return fe
	}
	fe.CommandID = idOf(fe.Kind, []byte(strings.TrimPrefix(rest, prefixExchange)))
	return fe
}

// idOf finds the "id" member at the top level of a command's JSON, reading
// tokens only as far as needed, so a truncated or broken body still gives
// its id when the id comes first (as Gravitee writes it).
func idOf(k Kind, body []byte) string {
	if k != KindCommand {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		key, ok := t.(string)
		if !ok {
			return ""
		}
		if key == "id" {
			v, err := dec.Token()
			if s, ok := v.(string); err == nil && ok && validID(s) {
				return s
			}
			return ""
		}
		// Skip the member's value, whatever it is.
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
}

// validID bounds what is echoed back as a command id.
func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// truncate keeps quoted controller input short in error messages.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
