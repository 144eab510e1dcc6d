package iam

import (
	"context"
	"crypto/subtle"
	"errors"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// API Connect's platform token endpoint (POST /api/token, package apic)
// decides here: its four grants over the same clients, keys, users and
// signing keys as every other token.

// The client id and secret that IBM's API Connect toolkit and many scripts
// hard-code. They are public, so they authenticate nothing by themselves:
// with them the API key or the password alone decides who the caller is.
const (
	ToolkitClientID     = "599b7aef-8841-4ee2-88a0-84d49c4d6ff2"
	ToolkitClientSecret = "0ea28423-e73b-47d4-b40e-ddb45c48bb0c"
)

// RefreshTokenPrefix starts the refresh tokens of the platform endpoint:
// the same slrf_ format as IBM Cloud IAM's (KeyRefreshTokenPrefix), in the
// same store table; the store keeps each endpoint's to itself. (Before
// migration 0011 they were slrt_, which bundle tokens also use.)
const RefreshTokenPrefix = KeyRefreshTokenPrefix

// DefaultRefreshLifetime is how long a refresh token lives.
const DefaultRefreshLifetime = 24 * time.Hour

// PlatformRequest is a POST /api/token body.
type PlatformRequest struct {
	GrantType    string
	ClientID     string
	ClientSecret secret.Value
	APIKey       secret.Value
	Username     string
	Password     secret.Value
	Realm        string
	RefreshToken secret.Value
	Source       string
	RequestID    string
	// Admit, when set, is asked once the caller has authenticated (see
	// TokenRequest.Admit).
	Admit func(clientID, instanceID string) error
}

// PlatformToken is the answer of POST /api/token.
type PlatformToken struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token,omitempty"`
	RefreshExpiresIn int64  `json:"refresh_expires_in,omitempty"`
}

func isToolkit(id string, sec secret.Value) bool {
	return id == ToolkitClientID && subtle.ConstantTimeCompare([]byte(sec.Reveal()), []byte(ToolkitClientSecret)) == 1
}

// PlatformExchange serves API Connect's grants: api_key, client_credentials,
// password (a user's name and password; realm provider/… or admin/…) and
// refresh_token. Every failure of credentials is ErrBadCredentials.
func (s *Service) PlatformExchange(ctx context.Context, r PlatformRequest) (PlatformToken, error) {
	tr := TokenRequest{ClientID: r.ClientID, ClientSecret: r.ClientSecret, APIKey: r.APIKey, Source: r.Source, RequestID: r.RequestID, Admit: r.Admit}
	toolkit := isToolkit(r.ClientID, r.ClientSecret)
	switch r.GrantType {
	case "api_key":
		if toolkit {
			return s.toolkitAPIKey(ctx, tr)
		}
		resp, err := s.ExchangeAPIKey(ctx, tr)
		if err != nil {
			return PlatformToken{}, err
		}
		return s.withRefresh(ctx, resp)
	case "client_credentials":
		if toolkit {
			return PlatformToken{}, invalid("the toolkit client cannot use client_credentials: use api_key or password")
		}
		resp, err := s.ClientCredentialsGrant(ctx, tr)
		if err != nil {
			return PlatformToken{}, err
		}
		return s.withRefresh(ctx, resp)
	case "password":
		return s.passwordGrant(ctx, r, toolkit)
	case "refresh_token":
		return s.refreshGrant(ctx, r, toolkit)
	}
	return PlatformToken{}, invalid("grant_type %q is not one of api_key, client_credentials, password, refresh_token", r.GrantType)
}

// toolkitAPIKey is the api_key grant with the toolkit client: the key
// decides the instance and the subject.
func (s *Service) toolkitAPIKey(ctx context.Context, r TokenRequest) (PlatformToken, error) {
	ctx = WithGrant(ctx, GrantAPIKey)
	var key store.APIKey
	why := "API key missing"
	if !r.APIKey.IsZero() {
		if k, err := s.Store.APIKeyByHash(ctx, hashSecret(r.APIKey)); err == nil && wellFormed(r.APIKey.Reveal(), APIKeyPrefix) {
			key, why = s.checkAPIKey(ctx, r.APIKey, k.InstanceID)
		} else if store.Unavailable(err) {
			why = whyStoreUnavailable
		} else {
			why = "unknown API key"
		}
	}
	p := Principal{InstanceID: key.InstanceID, SubjectKind: "client", SubjectName: ToolkitClientID, Source: r.Source, RequestID: r.RequestID}
	if why != "" {
		return PlatformToken{}, s.refuse(ctx, p, p.InstanceID != "", why)
	}
	p.SubjectKind, p.SubjectName = key.OwnerKind, key.OwnerName
	if err := s.admit(ctx, p, r.Admit, ToolkitClientID, key.InstanceID); err != nil {
		return PlatformToken{}, err
	}
	resp, err := s.issue(ctx, p, Claims{Subject: key.OwnerID, ClientID: ToolkitClientID, InstanceID: key.InstanceID,
		Role: key.OwnerRole, Scope: scopeFor(key.OwnerRole), KeyID: key.ID, KeyEpoch: key.TokenEpoch}, "apiKey/"+key.ID, func() { s.used.key(key.ID, s.now()) })
	if err != nil {
		return PlatformToken{}, err
	}
	return s.withRefresh(ctx, resp)
}

// realmOK accepts the provider and admin realms of the platform API.
func realmOK(realm string) bool {
	return realm == "" || strings.HasPrefix(realm, "provider/") || strings.HasPrefix(realm, "admin/")
}

// platformClient checks the client of a platform token request (the
// toolkit's client is not checked: it is every instance's) and returns it
// with the principal the grant is audited as; a refused client is
// refused and audited here.
func (s *Service) platformClient(ctx context.Context, r PlatformRequest, toolkit bool) (store.ClientCredential, Principal, error) {
	var cred store.ClientCredential
	why := ""
	if !toolkit {
		cred, why = s.checkClient(ctx, TokenRequest{ClientID: r.ClientID, ClientSecret: r.ClientSecret})
	}
	p := Principal{InstanceID: cred.InstanceID, SubjectKind: "client", SubjectName: r.ClientID, Source: r.Source, RequestID: r.RequestID}
	if why != "" {
		return cred, p, s.refuse(ctx, p, p.InstanceID != "", why)
	}
	return cred, p, nil
}

func (s *Service) passwordGrant(ctx context.Context, r PlatformRequest, toolkit bool) (PlatformToken, error) {
	ctx = WithGrant(ctx, GrantPassword)
	if !realmOK(r.Realm) {
		return PlatformToken{}, invalid("realm %q is not known: use provider/default-idp-2 (or another provider/… realm)", r.Realm)
	}
	if r.Username == "" || r.Password.IsZero() {
		return PlatformToken{}, invalid("username and password are required with grant_type password")
	}
	cred, p, err := s.platformClient(ctx, r, toolkit)
	if err != nil {
		return PlatformToken{}, err
	}
	why := ""
	// The instance is the client's. The toolkit client is every
	// instance's, so the realm names the instance (provider/<instance id
	// or name>) or the user name must be in one instance only.
	var user store.Identity
	if toolkit {
		u, err := s.toolkitUser(ctx, r)
		if KindOf(err) == KindInvalid {
			return PlatformToken{}, s.finish(ctx, p, "token.refuse", "token", err)
		}
		if err != nil {
			return PlatformToken{}, err
		}
		if user = u; user.ID == "" {
			why = "unknown user"
		}
	} else {
		u, err := s.Store.GetIdentity(ctx, cred.InstanceID, store.KindUser, r.Username)
		if err != nil {
			why = "unknown user"
		}
		user = u
	}
	if why == "" && (user.PasswordHash == "" || !VerifyPassword(r.Password, user.PasswordHash)) {
		why = "wrong password"
	}
	if why != "" {
		return PlatformToken{}, s.refuse(ctx, p, p.InstanceID != "", why)
	}
	clientID := cred.ClientID
	if toolkit {
		clientID = ToolkitClientID
	}
	p.InstanceID, p.SubjectKind, p.SubjectName = user.InstanceID, user.Kind, user.Name
	if err := s.admit(ctx, p, r.Admit, clientID, user.InstanceID); err != nil {
		return PlatformToken{}, err
	}
	resp, err := s.issue(ctx, p, Claims{Subject: user.ID, ClientID: clientID, InstanceID: user.InstanceID,
		Role: user.Role, Scope: scopeFor(user.Role)}, "user/"+user.Name, nil)
	if err != nil {
		return PlatformToken{}, err
	}
	return s.withRefresh(ctx, resp)
}

// toolkitUser finds the user a password grant of the toolkit client
// names: in the instance its realm names (provider/<instance id or name>,
// admin/… too), else in the one instance that has a user of that name.
// A name several instances have, with a realm that names none of them,
// is refused as ambiguous (instance admins are all "admin"), before any
// password is checked. No user: a zero Identity.
func (s *Service) toolkitUser(ctx context.Context, r PlatformRequest) (store.Identity, error) {
	ins, err := s.Store.ListInstances(ctx)
	if err != nil {
		return store.Identity{}, err
	}
	_, idp, _ := strings.Cut(r.Realm, "/")
	for _, in := range ins {
		if idp != "" && (idp == in.ID || idp == in.Name) {
			u, err := s.Store.GetIdentity(ctx, in.ID, store.KindUser, r.Username)
			if errors.Is(err, store.ErrNotFound) {
				return store.Identity{}, nil
			}
			return u, err
		}
	}
	var found []store.Identity
	for _, in := range ins {
		u, err := s.Store.GetIdentity(ctx, in.ID, store.KindUser, r.Username)
		switch {
		case err == nil:
			found = append(found, u)
		case !errors.Is(err, store.ErrNotFound):
			return store.Identity{}, err
		}
	}
	switch len(found) {
	case 0:
		return store.Identity{}, nil
	case 1:
		return found[0], nil
	}
	return store.Identity{}, invalid("with the toolkit client, user %s is ambiguous: %d instances have a user of that name; "+
		"name the instance in the realm, provider/<instance id or name>, or use the instance's own client id and secret", r.Username, len(found))
}

// withRefresh adds a refresh token to an access token's answer.
func (s *Service) withRefresh(ctx context.Context, resp TokenResponse) (PlatformToken, error) {
	c, err := s.Tokens.Verify(ctx, resp.AccessToken)
	if err != nil {
		return PlatformToken{}, err
	}
	life := s.RefreshLifetime
	if life <= 0 {
		life = DefaultRefreshLifetime
	}
	rt := newSecret(RefreshTokenPrefix)
	now := s.now()
	if err := s.Store.PutRefreshToken(ctx, store.RefreshToken{Hash: hashSecret(rt), InstanceID: c.InstanceID, ClientID: c.ClientID,
		SubjectID: c.Subject, KeyID: c.KeyID, KeyEpoch: c.KeyEpoch, CreatedAt: now, ExpiresAt: now.Add(life)}); err != nil {
		return PlatformToken{}, err
	}
	return PlatformToken{AccessToken: resp.AccessToken, TokenType: "Bearer", ExpiresIn: resp.ExpiresIn,
		RefreshToken: rt.Reveal(), RefreshExpiresIn: int64(life / time.Second)}, nil
}

// refreshGrant trades a refresh token (used once) for a new access token
// and refresh token, provided what it came from still holds: the same
// client, its key unlocked and unexpired, its subject still there.
func (s *Service) refreshGrant(ctx context.Context, r PlatformRequest, toolkit bool) (PlatformToken, error) {
	ctx = WithGrant(ctx, GrantRefreshToken)
	if r.RefreshToken.IsZero() {
		return PlatformToken{}, invalid("refresh_token is required with grant_type refresh_token")
	}
	_, p, err := s.platformClient(ctx, r, toolkit)
	if err != nil {
		return PlatformToken{}, err
	}
	why := ""
	var t store.RefreshToken
	if !wellFormed(r.RefreshToken.Reveal(), RefreshTokenPrefix) {
		why = "refresh token malformed"
	} else if got, err := s.Store.TakeRefreshToken(ctx, hashSecret(r.RefreshToken), s.now()); store.Unavailable(err) {
		// Not refused: the token could not be looked at. (If the take
		// committed and only its answer was lost, a retry hears that
		// the token is used, as after any lost answer.)
		return PlatformToken{}, errStoreUnavailable
	} else if err != nil {
		why = "unknown, used or expired refresh token"
	} else {
		t = got
		if t.ClientID != r.ClientID {
			why = "refresh token of another client"
		}
	}
	if why == "" {
		g, err := s.Store.GrantState(ctx, t.ClientID, t.KeyID, t.SubjectID, "")
		if err != nil {
			return PlatformToken{}, err
		}
		if toolkit {
			g.ClientExists, g.ClientInstance = true, t.InstanceID // the toolkit client is public: the key or user decides
		}
		c := Claims{ClientID: t.ClientID, KeyID: t.KeyID, KeyEpoch: t.KeyEpoch, Subject: t.SubjectID, InstanceID: t.InstanceID}
		if _, err := s.check(c, g); err != nil {
			why = "what the refresh token came from is gone, locked or expired"
		} else {
			p.InstanceID, p.SubjectKind, p.SubjectName = t.InstanceID, g.SubjectKind, g.SubjectName
			if err := s.admit(ctx, p, r.Admit, t.ClientID, t.InstanceID); err != nil {
				return PlatformToken{}, err
			}
			resp, err := s.issue(ctx, p, Claims{Subject: t.SubjectID, ClientID: t.ClientID, InstanceID: t.InstanceID,
				Role: g.SubjectRole, Scope: scopeFor(g.SubjectRole), KeyID: t.KeyID, KeyEpoch: t.KeyEpoch}, "refreshToken", nil)
			if err != nil {
				return PlatformToken{}, err
			}
			return s.withRefresh(ctx, resp)
		}
	}
	p.InstanceID = t.InstanceID
	return PlatformToken{}, s.refuse(ctx, p, p.InstanceID != "", why)
}

// AuthenticateBearer is Authenticate for surfaces whose clients send only
// the bearer token (API Connect's platform API): the token's own client
// id stands in for X-IBM-Client-Id.
func (s *Service) AuthenticateBearer(ctx context.Context, bearer string) (Principal, error) {
	c, err := s.Tokens.Verify(ctx, bearer)
	if err != nil {
		return Principal{}, err
	}
	if c.ClientID == ToolkitClientID {
		if c.ConsumerOrgID != "" || c.Role == "" {
			return Principal{}, ErrInvalidToken
		}
		g, err := s.Store.GrantState(ctx, "", c.KeyID, c.Subject, c.ID)
		if err != nil {
			return Principal{}, err
		}
		g.ClientExists, g.ClientInstance = true, c.InstanceID // the toolkit client is public: the key or user decides
		if _, err := s.check(c, g); err != nil {
			return Principal{}, err
		}
		return Principal{InstanceID: c.InstanceID, SubjectID: c.Subject, SubjectKind: g.SubjectKind, SubjectName: g.SubjectName,
			Role: g.SubjectRole, ClientID: c.ClientID, KeyID: c.KeyID, TokenID: c.ID, ExpiresAt: time.Unix(c.Expiry, 0).UTC()}, nil
	}
	return s.Authenticate(ctx, bearer, c.ClientID)
}
