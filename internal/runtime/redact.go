package runtime

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/secret"
)

// redactor replaces the clear text of every configured secret with
// secret.Redacted in what the runtime writes about its work (log lines,
// trace events, error answers). The engine redacts its own excerpts; this
// is the runtime's second line, covering text the engine never saw, such
// as an error message a backend echoed.
type redactor struct{ r *strings.Replacer }

// minSecretLen matches the engine's: shorter passwords would redact
// fragments of ordinary words.
const minSecretLen = 3

func newRedactor(creds map[string]flow.Credential) *redactor {
	var secrets []string
	for _, c := range creds {
		pw := c.Password.Reveal()
		if len(pw) < minSecretLen {
			continue
		}
		basic := base64.StdEncoding.EncodeToString([]byte(c.User + ":" + pw))
		secrets = append(secrets, pw, basic)
		// Inside a JSON document the secret appears escaped.
		if q, err := json.Marshal(pw); err == nil {
			if esc := string(q[1 : len(q)-1]); esc != pw {
				secrets = append(secrets, esc)
			}
		}
	}
	if len(secrets) == 0 {
		return &redactor{}
	}
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	args := make([]string, 0, 2*len(secrets))
	for _, s := range slices.Compact(secrets) {
		args = append(args, s, secret.Redacted)
	}
	return &redactor{r: strings.NewReplacer(args...)}
}

func (r *redactor) String(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

func (r *redactor) Bytes(b []byte) []byte {
	if r == nil || r.r == nil {
		return b
	}
	return []byte(r.r.Replace(string(b)))
}

// redactHandler is a slog.Handler that passes every message and string
// (or error) attribute through the redactor before the next handler
// formats it.
type redactHandler struct {
	next slog.Handler
	r    *redactor
}

func newRedactHandler(next slog.Handler, r *redactor) slog.Handler {
	if r == nil || r.r == nil {
		return next
	}
	return &redactHandler{next: next, r: r}
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.String(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]any, len(attrs))
		for i, g := range attrs {
			out[i] = h.attr(g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.r.String(err.Error()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h *redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return &redactHandler{next: h.next.WithAttrs(red), r: h.r}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{next: h.next.WithGroup(name), r: h.r}
}
