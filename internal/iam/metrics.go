package iam

import (
	"context"
	"errors"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Metrics counts what the service decides, for the control plane's
// /metrics. The service works the same without it (nil). Every label it
// passes comes from a fixed set, never from what a caller sent.
type Metrics interface {
	// Token is told of every token issued (reason "") or refused, by the
	// grant that asked for it.
	Token(grant, reason string)
	// Lease is told of every lease event (create, renew, revoke, expire)
	// with its audit outcome.
	Lease(event, outcome string)
}

// Grants, as metrics name them.
const (
	GrantAPIKey            = "api_key"
	GrantClientCredentials = "client_credentials"
	GrantClientAuth        = "client_auth" // introspection and revocation callers
	GrantRefreshToken      = "refresh_token"
	GrantPassword          = "password"
	GrantApplication       = "application"
	GrantAppCredential     = "app_credential"
)

type grantKey struct{}

// WithGrant names the grant a token request of ctx uses, so the token
// it yields or is refused is counted under it.
func WithGrant(ctx context.Context, grant string) context.Context {
	return context.WithValue(ctx, grantKey{}, grant)
}

func grantOf(ctx context.Context) string {
	if g, ok := ctx.Value(grantKey{}).(string); ok {
		return g
	}
	return "unknown"
}

// refusalReason is a bounded name for why a token was refused (the audit
// detail says more, with ids, and is never a label).
func refusalReason(err error) string {
	switch {
	case errors.Is(err, ErrBadCredentials):
		return "bad_credentials"
	case errors.Is(err, ErrGrantNotAllowed):
		return "grant_not_allowed"
	case errors.Is(err, ErrInvalidRefreshToken):
		return "invalid_refresh_token"
	}
	switch KindOf(err) {
	case KindInvalid:
		return "invalid"
	case KindUnauthorized:
		return "unauthorized"
	case KindForbidden:
		return "forbidden"
	case KindNotFound:
		return "not_found"
	case KindConflict:
		return "conflict"
	}
	return "error"
}

// count tells Metrics about one audited action, and marks a token's
// outcome on the request's trace span (when tracing is on).
func (s *Service) count(ctx context.Context, action, outcome string, err error) {
	if action == "token.issue" || action == "token.refuse" {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			reason := "none"
			if err != nil {
				reason = refusalReason(err)
			}
			span.AddEvent(action, trace.WithAttributes(attribute.String("sluice.token.grant", grantOf(ctx)),
				attribute.String("sluice.token.reason", reason)))
		}
	}
	if s.Metrics == nil {
		return
	}
	switch {
	case action == "token.issue":
		s.Metrics.Token(grantOf(ctx), "")
	case action == "token.refuse":
		s.Metrics.Token(grantOf(ctx), refusalReason(err))
	case strings.HasPrefix(action, "lease."):
		s.Metrics.Lease(strings.TrimPrefix(action, "lease."), outcome)
	}
}
