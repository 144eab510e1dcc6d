package client

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Redacted is what every rendering of a Secret prints instead of its value.
const Redacted = "[REDACTED]"

// Secret holds a secret string: a client secret, an API key, an access
// token, a password. Printing it with fmt, logging it with slog, or
// encoding it as JSON, YAML or text yields Redacted, so a Secret can sit in
// a struct that is logged or dumped without leaking. Only Reveal returns
// the clear text; call it where the value is used, never to show it.
type Secret struct {
	v string
}

// NewSecret wraps s as a Secret.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the clear text.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// String implements fmt.Stringer with a redaction.
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer with a redaction (for %#v).
func (s Secret) GoString() string { return "client.Secret(" + Redacted + ")" }

// Format makes every fmt verb, %x and %q included, print the redaction
// rather than the bytes underneath.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(s.GoString()))
		return
	}
	_, _ = f.Write([]byte(Redacted))
}

// MarshalJSON implements json.Marshaler with a redaction. The client sends
// secrets through its own request encoding, which reveals them explicitly.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler with a redaction; YAML
// encoders and map keys go through it.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer with a redaction.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// UnmarshalJSON reads a secret from a JSON string, so answers that carry
// one (a new API key, a client secret, an access token) decode straight
// into a Secret.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	s.v = str
	return nil
}

var (
	_ fmt.Formatter    = Secret{}
	_ fmt.Stringer     = Secret{}
	_ fmt.GoStringer   = Secret{}
	_ slog.LogValuer   = Secret{}
	_ json.Marshaler   = Secret{}
	_ json.Unmarshaler = (*Secret)(nil)
)
