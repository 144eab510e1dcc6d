package iam

import (
	"context"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// TokenResponse is the answer of every token endpoint. Field order is part
// of the contract: App Connect scripts parse it with tr and grep, so it is
// compact and in this order (access_token, token_type, scope, expires_in).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	Scope       string `json:"scope"`
	ExpiresIn   int64  `json:"expires_in"`
}

// TokenRequest carries what a caller presented to a token endpoint.
type TokenRequest struct {
	ClientID     string
	ClientSecret secret.Value
	InstanceID   string // the instance the caller names; must match the client's when set
	// RequireInstance makes InstanceID mandatory, as App Connect's exchange does.
	RequireInstance bool
	APIKey          secret.Value // empty for the client_credentials grant
	Source          string
	RequestID       string
	// Admit, when set, is asked once the caller has authenticated and
	// before a token is minted: the rate limits of the client and its
	// instance apply to authenticated traffic only. Its error (such as
	// TooManyRequests) refuses the request.
	Admit func(clientID, instanceID string) error
}

// ExchangeAPIKey is the App Connect exchange and the OAuth API-key grant:
// a client credential of the instance plus an API key yield a token with
// the key owner's role. Every failure is the same ErrBadCredentials; the
// audit record says what was wrong, for operators.
func (s *Service) ExchangeAPIKey(ctx context.Context, r TokenRequest) (TokenResponse, error) {
	ctx = WithGrant(ctx, GrantAPIKey)
	cred, key, why := s.checkExchange(ctx, r)
	p := Principal{InstanceID: cred.InstanceID, SubjectKind: "client", SubjectName: r.ClientID, Source: r.Source, RequestID: r.RequestID}
	if why != "" {
		return TokenResponse{}, s.refuse(ctx, p, cred.ClientID != "", why)
	}
	p.SubjectKind, p.SubjectName = key.OwnerKind, key.OwnerName
	if err := s.admit(ctx, p, r.Admit, cred.ClientID, cred.InstanceID); err != nil {
		return TokenResponse{}, err
	}
	return s.issue(ctx, p, Claims{Subject: key.OwnerID, ClientID: cred.ClientID, InstanceID: cred.InstanceID,
		Role: key.OwnerRole, Scope: scopeFor(key.OwnerRole), KeyID: key.ID, KeyEpoch: key.TokenEpoch}, "apiKey/"+key.ID, func() {
		s.used.key(key.ID, s.now())
	})
}

// ClientCredentialsGrant is OAuth 2.0's client_credentials grant (RFC 6749
// §4.4). Only a credential owned by a user or service ID (an application)
// may use it alone; an instance credential needs an API key as well, as in
// App Connect.
func (s *Service) ClientCredentialsGrant(ctx context.Context, r TokenRequest) (TokenResponse, error) {
	ctx = WithGrant(ctx, GrantClientCredentials)
	return s.clientCredentials(ctx, r, s.Tokens.Lifetime)
}

func (s *Service) clientCredentials(ctx context.Context, r TokenRequest, lifetime time.Duration) (TokenResponse, error) {
	cred, why := s.checkClient(ctx, r)
	p := Principal{InstanceID: cred.InstanceID, SubjectKind: "client", SubjectName: r.ClientID, Source: r.Source, RequestID: r.RequestID}
	if why != "" {
		return TokenResponse{}, s.refuse(ctx, p, cred.ClientID != "", why)
	}
	if cred.OwnerID == "" {
		if err := s.audit(ctx, p, "token.refuse", "token", ErrGrantNotAllowed, "instance credential used without an API key"); err != nil {
			return TokenResponse{}, err
		}
		return TokenResponse{}, ErrGrantNotAllowed
	}
	p.SubjectKind, p.SubjectName = cred.OwnerKind, cred.OwnerName
	if err := s.admit(ctx, p, r.Admit, cred.ClientID, cred.InstanceID); err != nil {
		return TokenResponse{}, err
	}
	resp, _, err := s.issueFor(ctx, p, Claims{Subject: cred.OwnerID, ClientID: cred.ClientID, InstanceID: cred.InstanceID,
		Role: cred.OwnerRole, Scope: scopeFor(cred.OwnerRole)}, lifetime, "clientCredential/"+cred.Name, nil)
	return resp, err
}

// checkExchange authenticates the client, then the API key, as
// checkClient and checkAPIKey do; when both are well formed they are read
// in one store query (one round trip on PostgreSQL, where the exchange's
// CPU goes mostly to round trips). The reason is for the audit only.
func (s *Service) checkExchange(ctx context.Context, r TokenRequest) (store.ClientCredential, store.APIKey, string) {
	if why := clientMalformed(r); why != "" {
		return store.ClientCredential{}, store.APIKey{}, why
	}
	if why := apiKeyMalformed(r.APIKey); why != "" {
		// The client's own problem, if any, is the one told.
		cred, cwhy := s.checkClient(ctx, r)
		if cwhy == "" {
			cwhy = why
		}
		return cred, store.APIKey{}, cwhy
	}
	ec, err := s.Store.ExchangeCredentials(ctx, r.ClientID, hashSecret(r.APIKey))
	cred, why := checkClientFound(r, ec.Client, lookupErr(ec.ClientFound, err))
	if why != "" {
		return cred, store.APIKey{}, why
	}
	key, why := s.checkAPIKeyFound(ec.Key, lookupErr(ec.KeyFound, err), cred.InstanceID)
	return cred, key, why
}

// lookupErr is the error a single lookup would have given: the store's,
// or ErrNotFound.
func lookupErr(found bool, err error) error {
	if err == nil && !found {
		return store.ErrNotFound
	}
	return err
}

// checkClient authenticates the client; the reason it returns is for the
// audit only.
func (s *Service) checkClient(ctx context.Context, r TokenRequest) (store.ClientCredential, string) {
	if why := clientMalformed(r); why != "" {
		return store.ClientCredential{}, why
	}
	cred, err := s.Store.GetClientCredential(ctx, r.ClientID)
	return checkClientFound(r, cred, err)
}

// clientMalformed is what is wrong with the client id and secret before
// anything is read, or "".
func clientMalformed(r TokenRequest) string {
	if r.ClientID == "" || r.ClientSecret.IsZero() {
		return "client id or secret missing"
	}
	if len(r.ClientID) > 64 {
		return "client id malformed"
	}
	return ""
}

// checkClientFound checks the presented secret and instance against the
// credential read for r.ClientID (err: the read's error).
func checkClientFound(r TokenRequest, cred store.ClientCredential, err error) (store.ClientCredential, string) {
	if store.Unavailable(err) {
		return store.ClientCredential{InstanceID: r.InstanceID}, whyStoreUnavailable
	}
	if err != nil {
		// No client: refuse tallies these per source (and per instance
		// named, when it exists) instead of one audit row each.
		return store.ClientCredential{InstanceID: r.InstanceID}, "unknown client id"
	}
	if !wellFormed(r.ClientSecret.Reveal(), ClientSecretPrefix) ||
		subtle.ConstantTimeCompare([]byte(hashSecret(r.ClientSecret)), []byte(cred.SecretHash)) != 1 {
		return cred, "wrong client secret"
	}
	if (r.RequireInstance || r.InstanceID != "") && r.InstanceID != cred.InstanceID {
		return cred, "instance id missing or not the client's"
	}
	return cred, ""
}

func (s *Service) checkAPIKey(ctx context.Context, v secret.Value, instanceID string) (store.APIKey, string) {
	if why := apiKeyMalformed(v); why != "" {
		return store.APIKey{}, why
	}
	key, err := s.Store.APIKeyByHash(ctx, hashSecret(v))
	return s.checkAPIKeyFound(key, err, instanceID)
}

// apiKeyMalformed is what is wrong with a presented API key before
// anything is read, or "".
func apiKeyMalformed(v secret.Value) string {
	if v.IsZero() {
		return "API key missing"
	}
	if !wellFormed(v.Reveal(), APIKeyPrefix) {
		return "API key malformed"
	}
	return ""
}

// checkAPIKeyFound checks the key read for a presented key's hash (err:
// the read's error).
func (s *Service) checkAPIKeyFound(key store.APIKey, err error, instanceID string) (store.APIKey, string) {
	switch {
	case store.Unavailable(err):
		return key, whyStoreUnavailable
	case err != nil:
		return key, "unknown API key"
	case instanceID != "" && key.InstanceID != instanceID:
		return key, "API key of another instance"
	case key.Locked:
		return key, "API key " + key.ID + " is locked"
	case !key.ExpiresAt.IsZero() && !s.now().Before(key.ExpiresAt):
		return key, "API key " + key.ID + " has expired"
	}
	return key, ""
}

// InstanceOf names the instance a refused token request belongs to, when
// what it carries points at one although it was refused before being
// checked (bad input): the client id's instance, else the API key's, else
// the refresh token's. Nothing here authenticates anything; it only
// decides under which instance the refusal is audited, so that
// instance's admins see it. "" when nothing names a known instance — such
// refusals are audited with no instance (docs/security.md).
func (s *Service) InstanceOf(ctx context.Context, clientID string, apiKey, refreshToken secret.Value) string {
	if clientID != "" && len(clientID) <= 64 {
		if c, err := s.Store.GetClientCredential(ctx, clientID); err == nil {
			return c.InstanceID
		}
	}
	if !apiKey.IsZero() && wellFormed(apiKey.Reveal(), APIKeyPrefix) {
		if k, err := s.Store.APIKeyByHash(ctx, hashSecret(apiKey)); err == nil {
			return k.InstanceID
		}
	}
	if !refreshToken.IsZero() {
		switch v := refreshToken.Reveal(); {
		case wellFormed(v, KeyRefreshTokenPrefix):
			if t, err := s.Store.KeyRefreshTokenByHash(ctx, hashSecret(refreshToken)); err == nil {
				return t.InstanceID
			}
		}
	}
	return ""
}

// whyStoreUnavailable is the reason a credential check gives when the
// store could not be asked; refuse turns it into errStoreUnavailable, so
// the caller hears "retry in a moment" (503), not "your credentials are
// wrong", and nothing is counted or audited against anyone.
const whyStoreUnavailable = "the store is unavailable"

var errStoreUnavailable = fmt.Errorf("%w: the credentials could not be checked", store.ErrUnavailable)

// refuse answers a failed token request. Refusals of an existing client
// are audited one by one under its instance; those naming no client at
// all (unknown, missing or malformed ids, which anyone can make up by the
// thousand) are counted per source and window and audited as one row.
func (s *Service) refuse(ctx context.Context, p Principal, clientKnown bool, why string) error {
	if why == whyStoreUnavailable {
		// Nothing was refused: the credentials could not be checked.
		return errStoreUnavailable
	}
	if !clientKnown {
		s.refusals.add(ctx, s, p.Source, p.InstanceID)
		return ErrBadCredentials
	}
	if err := s.audit(ctx, p, "token.refuse", "token", ErrBadCredentials, why); err != nil {
		return err
	}
	return ErrBadCredentials
}

// admit asks a request's Admit hook (the rate limits) once the caller has
// authenticated; a refusal is audited, as it concerns a known caller.
func (s *Service) admit(ctx context.Context, p Principal, hook func(clientID, instanceID string) error, clientID, instanceID string) error {
	if hook == nil {
		return nil
	}
	err := hook(clientID, instanceID)
	if err == nil {
		return nil
	}
	if aerr := s.audit(ctx, p, "token.refuse", "token", err, ""); aerr != nil {
		return aerr
	}
	return err
}

func (s *Service) issue(ctx context.Context, p Principal, c Claims, object string, after func()) (TokenResponse, error) {
	resp, _, err := s.issueFor(ctx, p, c, s.Tokens.Lifetime, object, after)
	return resp, err
}

// issueFor mints a token of the given lifetime, audits it and returns the
// answer with the signed claims (for answers that show exp itself).
func (s *Service) issueFor(ctx context.Context, p Principal, c Claims, lifetime time.Duration, object string, after func()) (TokenResponse, Claims, error) {
	raw, c, err := s.Tokens.MintFor(c, lifetime)
	if err != nil {
		return TokenResponse{}, c, err
	}
	if err := s.audit(ctx, p, "token.issue", object, nil, "jti "+c.ID); err != nil {
		return TokenResponse{}, c, err
	}
	if after != nil {
		after()
	}
	if c.ClientID != "" {
		s.used.client(c.ClientID, s.now())
	}
	// expires_in is derived from the signed claims, never from
	// configuration, so it always equals exp − iat.
	return TokenResponse{AccessToken: raw, TokenType: "bearer", Scope: c.Scope, ExpiresIn: c.Expiry - c.IssuedAt}, c, nil
}

// Authenticate establishes the principal of a request from its bearer
// token and the X-IBM-Client-Id it sent, if any: the token names its
// client, so tools that send only the bearer token (OAuth clients, IBM's
// and Airbyte's SDKs) are served, while a header naming another client
// than the token's is refused, as App Connect does. Beyond the signature it reads the
// current state of what the token was minted from, so deleting or locking
// an API key, deleting a client credential or an identity, or revoking the
// token takes effect on the very next request, on every replica sharing the
// store. The role is the subject's current one, so a demotion bites at once.
func (s *Service) Authenticate(ctx context.Context, bearer, clientID string) (Principal, error) {
	c, err := s.Tokens.Verify(ctx, bearer)
	if err != nil {
		return Principal{}, err
	}
	// The token names its client, so a call with the bearer token alone
	// is served (issue 14: OAuth clients, IBM's and Airbyte's SDKs send
	// nothing else); a header naming another client is refused.
	switch {
	case clientID != "" && clientID != c.ClientID:
		return Principal{}, refuseToken("X-IBM-Client-Id is not the client id the token was issued to")
	case c.ConsumerOrgID != "" || c.Role == "":
		// An app's token (no role, a consumer org) calls published APIs only.
		return Principal{}, refuseToken("the token is an application's: it calls the APIs that flows publish, not this API")
	}
	g, err := s.grant(ctx, c)
	if err != nil {
		return Principal{}, err
	}
	return Principal{InstanceID: c.InstanceID, SubjectID: c.Subject, SubjectKind: g.SubjectKind, SubjectName: g.SubjectName,
		Role: g.SubjectRole, ClientID: c.ClientID, KeyID: c.KeyID, TokenID: c.ID, ExpiresAt: time.Unix(c.Expiry, 0).UTC()}, nil
}

// grant reads the current state of what a verified token was minted from
// and refuses it when any part is gone, locked, expired or revoked.
func (s *Service) grant(ctx context.Context, c Claims) (store.GrantState, error) {
	g, err := s.Store.GrantState(ctx, c.ClientID, c.KeyID, c.Subject, c.ID)
	if err != nil {
		return g, err
	}
	return s.check(c, g)
}

// check refuses claims whose grant state has gone, locked, expired or
// been revoked.
func (s *Service) check(c Claims, g store.GrantState) (store.GrantState, error) {
	switch {
	case g.Revoked:
		return g, refuseToken("the token was revoked: get a new one from POST /api/v1/tokens")
	case c.ClientID == "" && c.KeyID == "":
		// Only an API key may stand without a client (IBM Cloud IAM's
		// exchange); a token with neither names nothing to check.
		return g, refuseToken("the token names neither a client nor an API key")
	case c.ClientID != "" && (!g.ClientExists || g.ClientInstance != c.InstanceID):
		return g, refuseToken("the client credential the token was issued to no longer exists")
	case g.SubjectRole == "":
		return g, refuseToken("the user or service ID the token was issued to no longer exists")
	case c.KeyID != "" && !g.KeyExists:
		return g, refuseToken("the API key the token was issued for was deleted")
	case c.KeyID != "" && g.KeyLocked:
		return g, refuseToken("the API key the token was issued for is locked")
	case c.KeyID != "" && !g.KeyExpiresAt.IsZero() && !s.now().Before(g.KeyExpiresAt):
		return g, refuseToken("the API key the token was issued for expired at %s", g.KeyExpiresAt.UTC().Format(time.RFC3339))
	case c.KeyID != "" && c.KeyEpoch != g.KeyEpoch:
		// Minted before the key's last lock: unlocking does not revive it.
		return g, refuseToken("the token was minted before its API key was last locked: get a new one from POST /api/v1/tokens")
	}
	return g, nil
}
