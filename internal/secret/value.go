// Package secret owns Sluice's handling of secret material: the Value type
// that keeps secrets out of logs, errors and responses, and the envelope
// encryption (AES-256-GCM data keys wrapped by a master key) that seals
// secrets at rest, and the token format (prefix, random part, CRC32
// checksum) of the secrets Sluice issues. It must not log, print or return
// a secret in clear text except through Value.Reveal, which callers use
// only at the point of use.
package secret

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
)

// Redacted is what every rendering of a Value prints instead of the value.
const Redacted = "[REDACTED]"

// Value holds a secret string. Its String, Format, GoString, MarshalJSON,
// MarshalText and LogValue methods never reveal the value, so a Value can be
// passed to fmt, slog or encoding/json without leaking it. Only Reveal
// returns the clear text.
type Value struct {
	v string
}

// New wraps s as a secret value.
func New(s string) Value { return Value{v: s} }

// Reveal returns the clear text. Call it only where the secret is used
// (sent to a peer, hashed, compared), never to log or format it.
func (s Value) Reveal() string { return s.v }

// IsZero reports whether the value is empty.
func (s Value) IsZero() bool { return s.v == "" }

// Equal compares two secrets in constant time.
func (s Value) Equal(o Value) bool {
	return subtle.ConstantTimeCompare([]byte(s.v), []byte(o.v)) == 1
}

// String implements fmt.Stringer with a redaction.
func (s Value) String() string { return Redacted }

// GoString implements fmt.GoStringer with a redaction (for %#v).
func (s Value) GoString() string { return "secret.Value(" + Redacted + ")" }

// Format implements fmt.Formatter so that every verb, including %x, %q and
// %v with flags, prints the redaction rather than the underlying bytes.
func (s Value) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(s.GoString()))
		return
	}
	_, _ = f.Write([]byte(Redacted))
}

// MarshalJSON implements json.Marshaler with a redaction.
func (s Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler with a redaction (used by
// encoding/json for map keys and by YAML encoders).
func (s Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer with a redaction.
func (s Value) LogValue() slog.Value { return slog.StringValue(Redacted) }

var (
	_ fmt.Formatter  = Value{}
	_ fmt.Stringer   = Value{}
	_ slog.LogValuer = Value{}
)

// UnmarshalJSON reads a secret from a JSON string, so request bodies can
// decode straight into a Value and never hold the secret as a plain string.
func (s *Value) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	s.v = str
	return nil
}
