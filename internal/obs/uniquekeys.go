package obs

import (
	"context"
	"log/slog"
	"slices"
)

// UniqueKeys wraps a handler so that every line carries each key once per
// group: an attribute added later (a With further down the call chain, or
// the log call's own) replaces an earlier one with the same key. Without
// it, a package that names its component on a logger its caller already
// named writes `"component":"a","component":"b"`, which JSON parsers read
// differently (most keep the last, some the first, some refuse the line).
func UniqueKeys(h slog.Handler) slog.Handler {
	if u, ok := h.(*uniqueKeys); ok {
		return u
	}
	return &uniqueKeys{next: h}
}

// uniqueKeys holds the attributes of its group level itself, deduplicated,
// and hands them to next with each record; attributes of outer levels were
// given to next (WithAttrs) when the group was opened.
type uniqueKeys struct {
	next  slog.Handler
	attrs []slog.Attr
	// withAttrs is next.WithAttrs(attrs), built once: a record none of
	// whose keys repeats (the common case, e.g. every access log line)
	// goes to it as it is, without a copy, and the JSON handler writes the
	// attributes it formatted in advance.
	withAttrs slog.Handler
}

func (h *uniqueKeys) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *uniqueKeys) WithAttrs(as []slog.Attr) slog.Handler {
	attrs := merge(slices.Clone(h.attrs), as)
	return &uniqueKeys{next: h.next, attrs: attrs, withAttrs: h.next.WithAttrs(attrs)}
}

func (h *uniqueKeys) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	next := h.next
	if len(h.attrs) > 0 {
		next = next.WithAttrs(h.attrs)
	}
	return &uniqueKeys{next: next.WithGroup(name)}
}

func (h *uniqueKeys) Handle(ctx context.Context, r slog.Record) error {
	if h.unique(r) {
		if h.withAttrs != nil {
			return h.withAttrs.Handle(ctx, r)
		}
		return h.next.Handle(ctx, r)
	}
	own := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		own = append(own, a)
		return true
	})
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(merge(slices.Clone(h.attrs), own)...)
	return h.next.Handle(ctx, out)
}

// merge appends as to base, each replacing an attribute of base (or an
// earlier one of as) with the same key in place: callers pass a copy, since
// base's array is shared with the logger it came from and every logger
// derived from it. Attributes without a key
// (inlined groups) are kept as they are.
func merge(base, as []slog.Attr) []slog.Attr {
	for _, a := range as {
		if a.Equal(slog.Attr{}) {
			continue
		}
		i := -1
		if a.Key != "" {
			i = slices.IndexFunc(base, func(b slog.Attr) bool { return b.Key == a.Key })
		}
		if i >= 0 {
			base[i] = a
		} else {
			base = append(base, a)
		}
	}
	return base
}

// maxUniqueCheck is how many keys unique compares without allocating; a
// record with more takes the copying path.
const maxUniqueCheck = 16

// unique reports whether r's keys are all distinct and none is one of the
// level's own (nor an inlined group): then merging changes nothing and the
// record can go on as it is.
func (h *uniqueKeys) unique(r slog.Record) bool {
	if r.NumAttrs()+len(h.attrs) > maxUniqueCheck {
		return false
	}
	var keys [maxUniqueCheck]string
	n := 0
	for _, a := range h.attrs {
		keys[n] = a.Key
		n++
	}
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "" || slices.Contains(keys[:n], a.Key) {
			ok = false
			return false
		}
		keys[n] = a.Key
		n++
		return true
	})
	return ok
}
