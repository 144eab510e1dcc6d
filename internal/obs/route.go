package obs

import "context"

type routeKey struct{}

// RouteSlot holds the route pattern (e.g. "GET /api/v1/configurations/{name}")
// that served a request, set by whichever route table took it. Metrics and
// traces label requests by pattern, never by path, so their cardinality
// stays bounded however many names callers use.
type RouteSlot struct{ pattern string }

// Route returns the pattern set for the request, or "" when no route took it.
func (s *RouteSlot) Route() string { return s.pattern }

// WithRouteSlot returns ctx carrying an empty slot for the route pattern.
func WithRouteSlot(ctx context.Context) (context.Context, *RouteSlot) {
	s := &RouteSlot{}
	return context.WithValue(ctx, routeKey{}, s), s
}

// SetRoute records the pattern of the route that serves the request of
// ctx; it does nothing when nobody asked (no slot in ctx).
func SetRoute(ctx context.Context, pattern string) {
	if s, ok := ctx.Value(routeKey{}).(*RouteSlot); ok && s.pattern == "" {
		s.pattern = pattern
	}
}

// WithRouteSlotIfNone returns ctx with a slot for the route pattern,
// reusing one an outer middleware already put there.
func WithRouteSlotIfNone(ctx context.Context) (context.Context, *RouteSlot) {
	if s, ok := ctx.Value(routeKey{}).(*RouteSlot); ok {
		return ctx, s
	}
	return WithRouteSlot(ctx)
}
