package obs

import (
	"context"
	"log/slog"
)

// withRequestIDs adds the request id of the record's context to every
// line logged with one (the *Context logging calls), so each line a
// request causes names it, whichever package writes it.
type withRequestIDs struct{ next slog.Handler }

func (h withRequestIDs) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h withRequestIDs) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.next.Handle(ctx, r)
}

func (h withRequestIDs) WithAttrs(as []slog.Attr) slog.Handler {
	return withRequestIDs{next: h.next.WithAttrs(as)}
}

func (h withRequestIDs) WithGroup(name string) slog.Handler {
	return withRequestIDs{next: h.next.WithGroup(name)}
}
