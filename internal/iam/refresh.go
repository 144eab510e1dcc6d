package iam

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// The API-key exchange of IBM Cloud IAM: an API key alone (a client may
// authenticate too, optionally) gets an access token and a refresh token.
// Refresh tokens are used once (RFC 9700 §4.14.2 rotation): each exchange
// of one marks it used and answers a new one, and a second use is refused.
// They belong to their API key: deleting the key deletes them, and while
// the key is locked or expired they are refused.

// ErrInvalidRefreshToken answers every refused refresh token, whatever
// was wrong with it (unknown, used, expired, its key locked, another
// client's); the audit record says which.
var ErrInvalidRefreshToken = &Error{Kind: KindInvalid, Msg: "the refresh token is not valid: it is unknown, used already, expired, or its API key is locked"}

// defaultKeyRefreshLifetime is how long a refresh token lasts unless
// configured: IBM Cloud's last 30 days.
const defaultKeyRefreshLifetime = 30 * 24 * time.Hour

// KeyToken is the answer of the API-key exchange and of a refresh.
type KeyToken struct {
	AccessToken  string
	RefreshToken secret.Value
	Scope        string
	IssuedAt     int64 // epoch seconds, as signed
	Expiry       int64 // epoch seconds, as signed
}

// KeyExchangeRequest is what a caller presented to the API-key exchange
// or to a refresh. ClientID and ClientSecret are optional client
// authentication.
type KeyExchangeRequest struct {
	APIKey       secret.Value // the API-key grant
	RefreshToken secret.Value // the refresh_token grant
	ClientID     string
	ClientSecret secret.Value
	Source       string
	RequestID    string
	// Admit, when set, is asked once the caller has authenticated (see
	// TokenRequest.Admit).
	Admit func(clientID, instanceID string) error
}

func (r KeyExchangeRequest) clientPresented() bool {
	return r.ClientID != "" || !r.ClientSecret.IsZero()
}

// ExchangeAPIKeyAlone exchanges an API key, with or without client
// authentication, for an access token with the key owner's role and a
// refresh token. Every failure is ErrBadCredentials.
func (s *Service) ExchangeAPIKeyAlone(ctx context.Context, r KeyExchangeRequest) (KeyToken, error) {
	ctx = WithGrant(ctx, GrantAPIKey)
	var cred store.ClientCredential
	why := ""
	if r.clientPresented() {
		cred, why = s.checkClient(ctx, TokenRequest{ClientID: r.ClientID, ClientSecret: r.ClientSecret})
	}
	var key store.APIKey
	if why == "" {
		key, why = s.checkAPIKey(ctx, r.APIKey, cred.InstanceID)
	}
	p := Principal{InstanceID: cred.InstanceID, SubjectKind: "client", SubjectName: r.ClientID, Source: r.Source, RequestID: r.RequestID}
	if !r.clientPresented() {
		p.InstanceID, p.SubjectKind, p.SubjectName = key.InstanceID, "apiKey", key.ID
	}
	if why != "" {
		return KeyToken{}, s.refuse(ctx, p, p.InstanceID != "", why)
	}
	if err := s.admit(ctx, p, r.Admit, cred.ClientID, key.InstanceID); err != nil {
		return KeyToken{}, err
	}
	return s.issueWithRefresh(ctx, p, key, cred.ClientID, "apiKey/"+key.ID, nil)
}

// Refresh exchanges an unused refresh token for a new access token and a
// new refresh token. The client that authenticated when it was issued, if
// any, must authenticate again; no other may.
func (s *Service) Refresh(ctx context.Context, r KeyExchangeRequest) (KeyToken, error) {
	ctx = WithGrant(ctx, GrantRefreshToken)
	old, key, why := s.checkRefreshToken(ctx, r)
	p := Principal{InstanceID: old.InstanceID, SubjectKind: "refreshToken", SubjectName: old.ID, Source: r.Source, RequestID: r.RequestID}
	if why == whyStoreUnavailable {
		// Nothing was refused: the token could not be looked at.
		return KeyToken{}, errStoreUnavailable
	}
	if why != "" {
		if old.ID == "" {
			// A token nobody issued names no instance: tallied per
			// source, not one audit row each (see refuse).
			s.refusals.add(ctx, s, r.Source, "")
		} else if err := s.audit(ctx, p, "token.refuse", "token", ErrInvalidRefreshToken, why); err != nil {
			return KeyToken{}, err
		}
		if why == "client secret wrong or client unknown" {
			return KeyToken{}, ErrBadCredentials
		}
		return KeyToken{}, ErrInvalidRefreshToken
	}
	if err := s.admit(ctx, p, r.Admit, old.ClientID, old.InstanceID); err != nil {
		return KeyToken{}, err
	}
	return s.issueWithRefresh(ctx, p, key, old.ClientID, "apiKey/"+key.ID, &old)
}

// checkRefreshToken looks at a presented refresh token without changing
// anything; the reason it returns is for the audit only.
func (s *Service) checkRefreshToken(ctx context.Context, r KeyExchangeRequest) (store.KeyRefreshToken, store.APIKey, string) {
	if r.RefreshToken.IsZero() {
		return store.KeyRefreshToken{}, store.APIKey{}, "refresh token missing"
	}
	if !wellFormed(r.RefreshToken.Reveal(), KeyRefreshTokenPrefix) {
		return store.KeyRefreshToken{}, store.APIKey{}, "refresh token malformed"
	}
	old, err := s.Store.KeyRefreshTokenByHash(ctx, hashSecret(r.RefreshToken))
	switch {
	case store.Unavailable(err):
		return store.KeyRefreshToken{}, store.APIKey{}, whyStoreUnavailable
	case err != nil:
		return old, store.APIKey{}, "unknown refresh token"
	case !old.UsedAt.IsZero():
		return old, store.APIKey{}, "refresh token " + old.ID + " used before"
	case !s.now().Before(old.ExpiresAt):
		return old, store.APIKey{}, "refresh token " + old.ID + " has expired"
	case r.ClientID != old.ClientID:
		return old, store.APIKey{}, "refresh token " + old.ID + " was issued to another client"
	}
	if old.ClientID != "" {
		if _, why := s.checkClient(ctx, TokenRequest{ClientID: r.ClientID, ClientSecret: r.ClientSecret}); why == whyStoreUnavailable {
			return old, store.APIKey{}, why
		} else if why != "" {
			return old, store.APIKey{}, "client secret wrong or client unknown"
		}
	}
	key, err := s.Store.GetAPIKey(ctx, old.InstanceID, old.KeyID)
	switch {
	case store.Unavailable(err):
		return old, key, whyStoreUnavailable
	case err != nil:
		return old, key, "API key " + old.KeyID + " of refresh token " + old.ID + " is gone"
	case key.Locked:
		return old, key, "API key " + key.ID + " is locked"
	case old.KeyEpoch != key.TokenEpoch:
		return old, key, "refresh token " + old.ID + " was issued before API key " + key.ID + " was last locked"
	case !key.ExpiresAt.IsZero() && !s.now().Before(key.ExpiresAt):
		return old, key, "API key " + key.ID + " has expired"
	}
	return old, key, ""
}

// issueWithRefresh mints an access token for key's owner and a refresh
// token, stores the refresh token (using up old, when refreshing) and
// audits the issue.
func (s *Service) issueWithRefresh(ctx context.Context, p Principal, key store.APIKey, clientID, object string, old *store.KeyRefreshToken) (KeyToken, error) {
	raw, c, err := s.Tokens.MintFor(Claims{Subject: key.OwnerID, ClientID: clientID, InstanceID: key.InstanceID,
		Role: key.OwnerRole, Scope: scopeFor(key.OwnerRole), KeyID: key.ID, KeyEpoch: key.TokenEpoch}, s.APIKeyTokenLifetime)
	if err != nil {
		return KeyToken{}, err
	}
	rv := newSecret(KeyRefreshTokenPrefix)
	life := s.RefreshTokenLifetime
	if life <= 0 {
		life = defaultKeyRefreshLifetime
	}
	now := s.now()
	next := store.KeyRefreshToken{ID: "rt-" + randomID(8), Hash: hashSecret(rv), InstanceID: key.InstanceID, KeyID: key.ID,
		KeyEpoch: key.TokenEpoch, ClientID: clientID, CreatedAt: now, ExpiresAt: now.Add(life)}
	if old == nil {
		err = s.Store.CreateKeyRefreshToken(ctx, next)
	} else {
		err = s.Store.RotateKeyRefreshToken(ctx, old.Hash, now, next)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			// Another exchange of the same token won the race.
			if aerr := s.audit(ctx, p, "token.refuse", "token", ErrInvalidRefreshToken, "refresh token "+old.ID+" used concurrently"); aerr != nil {
				return KeyToken{}, aerr
			}
			return KeyToken{}, ErrInvalidRefreshToken
		}
	}
	if err != nil {
		return KeyToken{}, err
	}
	p.InstanceID, p.SubjectKind, p.SubjectName = key.InstanceID, key.OwnerKind, key.OwnerName
	if err := s.audit(ctx, p, "token.issue", object, nil, "jti "+c.ID+", refresh token "+next.ID); err != nil {
		return KeyToken{}, err
	}
	s.used.key(key.ID, now)
	if clientID != "" {
		s.used.client(clientID, now)
	}
	return KeyToken{AccessToken: raw, RefreshToken: rv, Scope: c.Scope, IssuedAt: c.IssuedAt, Expiry: c.Expiry}, nil
}
