package iam

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// GrantTypeAPIKey is Sluice's extension grant (RFC 6749 §4.5): a client
// credential plus an API key, the OAuth form of App Connect's exchange.
const GrantTypeAPIKey = "urn:sluice:params:oauth:grant-type:api-key"

// ErrGrantNotAllowed answers a client that authenticated but may not use
// the grant it asked for: an instance credential asking for
// client_credentials alone (RFC 6749 §5.2 unauthorized_client).
var ErrGrantNotAllowed = &Error{Kind: KindForbidden, Msg: "this client may only get tokens together with an API key"}

// AuthenticateClient checks a client id and secret, for the endpoints that
// require client authentication (introspection, revocation).
func (s *Service) AuthenticateClient(ctx context.Context, clientID string, sec secret.Value, source, requestID string) (store.ClientCredential, error) {
	ctx = WithGrant(ctx, GrantClientAuth)
	cred, why := s.checkClient(ctx, TokenRequest{ClientID: clientID, ClientSecret: sec})
	if why != "" {
		p := Principal{InstanceID: cred.InstanceID, SubjectKind: "client", SubjectName: clientID, Source: source, RequestID: requestID}
		return cred, s.refuse(ctx, p, cred.ClientID != "", why)
	}
	return cred, nil
}

// Introspect reports whether token is active for caller (RFC 7662 §2.2).
// A token of another instance is reported inactive, so a client cannot
// learn anything about tokens outside its own instance.
func (s *Service) Introspect(ctx context.Context, caller store.ClientCredential, token string) (Claims, bool) {
	c, err := s.Tokens.Verify(ctx, token)
	if err != nil || c.InstanceID != caller.InstanceID {
		return Claims{}, false
	}
	if _, err := s.grant(ctx, c); err != nil {
		return Claims{}, false
	}
	return c, true
}

// Revoke revokes token (RFC 7009 §2.1): from the next request on, on every
// replica, it is refused. Tokens that are invalid, expired or of another
// instance are ignored, as §2.2 asks (the answer is the same either way);
// a token issued to another client of the instance is refused.
func (s *Service) Revoke(ctx context.Context, caller store.ClientCredential, token, source, requestID string) error {
	c, err := s.Tokens.Verify(ctx, token)
	if err != nil || c.InstanceID != caller.InstanceID {
		return nil
	}
	p := Principal{InstanceID: caller.InstanceID, SubjectKind: "client", SubjectName: caller.Name, Source: source, RequestID: requestID}
	if c.ClientID != caller.ClientID {
		return s.finish(ctx, p, "token.revoke", "token/"+c.ID, forbidden("the token was issued to another client"))
	}
	err = s.Store.RevokeToken(ctx, c.ID, time.Unix(c.Expiry, 0), s.now())
	return s.finish(ctx, p, "token.revoke", "token/"+c.ID, err)
}

// IsGrantNotAllowed reports whether err is ErrGrantNotAllowed.
func IsGrantNotAllowed(err error) bool { return errors.Is(err, ErrGrantNotAllowed) }
