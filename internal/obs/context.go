package obs

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// WithRequestID returns ctx carrying id as its request id, for work that
// does not arrive through Middleware (a runtime's flow requests and
// message runs).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// IsRequestIDKey reports whether key is the one RequestID looks up, for
// a context type of its own that answers it from a field (a runtime's
// message run builds its id only when a log line asks) instead of a
// WithRequestID layer per run.
func IsRequestIDKey(key any) bool {
	_, ok := key.(ctxKey)
	return ok
}

// ContextIDs wraps h so that every line logged with a context (the
// *Context logging calls) carries that context's request_id and, when the
// context is in a trace (tracing is on, or a caller's traceparent was
// continued), its trace_id: each line a request causes names it, whichever
// package writes it.
func ContextIDs(h slog.Handler) slog.Handler { return withRequestIDs{next: h} }

type withRequestIDs struct{ next slog.Handler }

func (h withRequestIDs) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h withRequestIDs) Handle(ctx context.Context, r slog.Record) error {
	id := RequestID(ctx)
	if id != "" && hasAttr(r, "request_id", id) {
		// The line names it already (the access log does): adding it
		// again would cost a copy of the record here and another where
		// UniqueKeys folds the two into one.
		id = ""
	}
	sc := trace.SpanContextFromContext(ctx)
	if id != "" || sc.HasTraceID() {
		r = r.Clone()
		if id != "" {
			r.AddAttrs(slog.String("request_id", id))
		}
		if sc.HasTraceID() {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
		}
	}
	return h.next.Handle(ctx, r)
}

// hasAttr reports whether r carries the string attribute key=value.
func hasAttr(r slog.Record, key, value string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key && a.Value.Kind() == slog.KindString && a.Value.String() == value
		return !found
	})
	return found
}

func (h withRequestIDs) WithAttrs(as []slog.Attr) slog.Handler {
	return withRequestIDs{next: h.next.WithAttrs(as)}
}

func (h withRequestIDs) WithGroup(name string) slog.Handler {
	return withRequestIDs{next: h.next.WithGroup(name)}
}
