package apps

import (
	"context"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// CredentialInput describes a new app credential. An empty Name is derived
// from Title, an empty Title is the name.
type CredentialInput struct {
	Input
}

// Issued is a credential just created, with its secret: the only time the
// secret exists outside the caller's hands.
type Issued struct {
	Credential store.AppCredential
	Secret     secret.Value
}

func credentialObject(r Resolved, name string) string {
	return "appCredential/" + r.Catalog.Name + "/" + r.ConsumerOrg.Name + "/" + r.App.Name + "/" + name
}

// newClientID returns an app credential's client id: a UUID, as API
// Connect's are. Instance credentials' ids are 32 hex digits without
// dashes, so the token endpoint tells the two apart without a look-up.
func newClientID() string { return newID() }

// IsAppClientID reports whether a client id has the shape of an app
// credential's (a UUID), so token endpoints send it here.
func IsAppClientID(id string) bool {
	return len(id) == 36 && id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-'
}

// CreateCredential adds a permanent credential to an app.
func (s *Service) CreateCredential(ctx context.Context, p iam.Principal, path Path, in CredentialInput) (Resolved, Issued, error) {
	return s.issue(ctx, p, path, in, 0, "appCredential.create")
}

func (s *Service) issue(ctx context.Context, p iam.Principal, path Path, in CredentialInput, ttl time.Duration, action string) (Resolved, Issued, error) {
	if in.Name == "" && in.Title == "" {
		in.Name = "credential-" + newID()[:8]
	}
	if err := in.check("credential"); err != nil {
		return Resolved{}, Issued{}, err
	}
	r, err := s.Resolve(ctx, p, path)
	if err != nil {
		return r, Issued{}, err
	}
	object := credentialObject(r, in.Name)
	if !canManage(p) {
		return r, Issued{}, s.denied(ctx, p, action, object)
	}
	now := s.now()
	v, hash, hint := iam.IssueSecret(iam.AppSecretPrefix)
	c := store.AppCredential{ID: newID(), InstanceID: p.InstanceID, CatalogID: r.Catalog.ID, ConsumerOrgID: r.ConsumerOrg.ID,
		AppID: r.App.ID, Name: in.Name, Title: in.Title, Summary: in.Summary, ClientID: newClientID(),
		SecretHash: hash, SecretHint: hint, CreatedAt: now, CreatedBy: p.Actor(), UpdatedAt: now}
	out := Issued{Credential: c, Secret: v}
	if action == "lease.create" {
		ttl, err := leaseTTL(r.App, ttl)
		if err != nil {
			return r, Issued{}, s.IAM.Finish(ctx, p, action, object, err)
		}
		c.ExpiresAt = now.Add(ttl)
		if r.App.MaxTTL > 0 {
			c.MaxExpiresAt = now.Add(r.App.MaxTTL)
		}
		out.Credential = c
	}
	if err := s.IAM.Audited(ctx, p, action, object, func(ctx context.Context) error {
		return iam.StoreErr(s.Store.CreateAppCredential(ctx, c), "credential "+in.Name+" of app "+r.App.Name)
	}); err != nil {
		return r, Issued{}, err
	}
	s.emit(Event{Type: EventCredentialCreated, Credential: c})
	if c.Leased() {
		s.wake(c.ExpiresAt)
	}
	return r, out, nil
}

// ListCredentials lists a page of an app's credentials, leases included,
// oldest first; only hashes and hints, never secrets.
func (s *Service) ListCredentials(ctx context.Context, p iam.Principal, path Path, req iam.ListRequest) (iam.ListPage[store.AppCredential], error) {
	if err := readable(p); err != nil {
		return iam.ListPage[store.AppCredential]{}, err
	}
	r, err := s.Resolve(ctx, p, path)
	if err != nil {
		return iam.ListPage[store.AppCredential]{}, err
	}
	return s.listCredentials(ctx, p, r, false, req)
}

// listCredentials reads a page of the credentials (or only the leases)
// of the app r names, leaving out leases that have expired but are not
// swept yet: they are gone as far as anyone can tell.
func (s *Service) listCredentials(ctx context.Context, p iam.Principal, r Resolved, leases bool, req iam.ListRequest) (iam.ListPage[store.AppCredential], error) {
	f := store.AppCredentialFilter{LiveAt: s.now(), LeasesOnly: leases}
	scope := []string{"appCredentials", p.InstanceID, r.App.ID, strconv.FormatBool(leases)}
	return iam.PageOf(req, scope, func(pg store.Page) ([]store.AppCredential, error) {
		return s.Store.ListAppCredentials(ctx, r.App.ID, f, pg)
	})
}

// live drops leases that have expired but are not swept yet: they are
// gone as far as anyone can tell.
func (s *Service) live(cs []store.AppCredential) []store.AppCredential {
	now := s.now()
	out := cs[:0]
	for _, c := range cs {
		if !c.Leased() || now.Before(c.ExpiresAt) {
			out = append(out, c)
		}
	}
	return out
}

// GetCredential reads one credential by id or name.
func (s *Service) GetCredential(ctx context.Context, p iam.Principal, path Path, ref string) (Resolved, store.AppCredential, error) {
	if err := readable(p); err != nil {
		return Resolved{}, store.AppCredential{}, err
	}
	r, err := s.Resolve(ctx, p, path)
	if err != nil {
		return r, store.AppCredential{}, err
	}
	c, err := s.Store.GetAppCredential(ctx, r.App.ID, ref)
	if err == nil && len(s.live([]store.AppCredential{c})) == 0 {
		err = store.ErrNotFound
	}
	return r, c, iam.StoreErr(err, "credential "+ref+" of app "+r.App.Name)
}

// DeleteCredential deletes a credential (a lease too: that is revoking
// it); tokens and calls with it fail from now on.
func (s *Service) DeleteCredential(ctx context.Context, p iam.Principal, path Path, ref string) error {
	return s.remove(ctx, p, path, ref, false)
}

func (s *Service) remove(ctx context.Context, p iam.Principal, path Path, ref string, leaseOnly bool) error {
	r, err := s.Resolve(ctx, p, path)
	if err != nil {
		return err
	}
	action, what := "appCredential.delete", "credential "
	if leaseOnly {
		action, what = "lease.revoke", "lease "
	}
	c, err := s.Store.GetAppCredential(ctx, r.App.ID, ref)
	if err == nil && leaseOnly && !c.Leased() {
		err = store.ErrNotFound
	}
	if err != nil {
		return iam.StoreErr(err, what+ref+" of app "+r.App.Name)
	}
	object := credentialObject(r, c.Name)
	if !canManage(p) {
		return s.denied(ctx, p, action, object)
	}
	if err := s.IAM.Audited(ctx, p, action, object, func(ctx context.Context) error {
		return iam.StoreErr(s.Store.DeleteAppCredential(ctx, c.ID), what+ref+" of app "+r.App.Name)
	}); err != nil {
		return err
	}
	reason := "deleted"
	if leaseOnly {
		reason = "revoked"
	}
	s.emitDeleted([]store.AppCredential{c}, reason)
	return nil
}

// Authenticated is an app credential that authenticated, with its app.
type Authenticated struct {
	Credential store.AppCredential
	App        store.App
}

// AuthenticateClient checks an app credential's client id and secret, and
// that it may authenticate now: not expired (checked here, at use, so it
// holds even when no sweeper has run), its app enabled. Every failure is
// iam.ErrBadCredentials; why is for the audit.
func (s *Service) AuthenticateClient(ctx context.Context, clientID string, sec secret.Value) (Authenticated, string, error) {
	if clientID == "" || sec.IsZero() {
		return Authenticated{}, "client id or secret missing", iam.ErrBadCredentials
	}
	c, err := s.Store.AppCredentialByClientID(ctx, clientID)
	if isNotFound(err) {
		return Authenticated{}, "unknown client id", iam.ErrBadCredentials
	}
	if err != nil {
		return Authenticated{}, "", err
	}
	if !iam.SecretMatches(sec, iam.AppSecretPrefix, c.SecretHash) {
		return Authenticated{Credential: c}, "wrong client secret", iam.ErrBadCredentials
	}
	if c.Leased() && !s.now().Before(c.ExpiresAt) {
		return Authenticated{Credential: c}, "lease " + c.ID + " has expired", iam.ErrBadCredentials
	}
	a, err := s.Store.GetAppByID(ctx, c.AppID)
	if isNotFound(err) {
		return Authenticated{Credential: c}, "app gone", iam.ErrBadCredentials
	}
	if err != nil {
		return Authenticated{}, "", err
	}
	if a.State != StateEnabled {
		return Authenticated{Credential: c, App: a}, "app " + a.Name + " is disabled", iam.ErrBadCredentials
	}
	return Authenticated{Credential: c, App: a}, "", nil
}

// AppScope is the scope of app tokens: they call published APIs, never
// the management API.
const AppScope = "app"

// ClientCredentialsGrant gives an app credential a token (OAuth 2.0
// client_credentials, RFC 6749 §4.4). The subject is the app; the consumer
// org and catalog are claims. The token has no role, so the management
// API refuses it (iam.Authenticate requires a role and an instance
// credential).
func (s *Service) ClientCredentialsGrant(ctx context.Context, r iam.TokenRequest) (iam.TokenResponse, error) {
	ctx = iam.WithGrant(ctx, iam.GrantAppCredential)
	au, why, err := s.AuthenticateClient(ctx, r.ClientID, r.ClientSecret)
	p := iam.Principal{InstanceID: au.Credential.InstanceID, SubjectKind: "appClient", SubjectName: r.ClientID, Source: r.Source, RequestID: r.RequestID}
	if err != nil {
		if why == "" {
			return iam.TokenResponse{}, err
		}
		if aerr := s.IAM.Record(ctx, p, "token.refuse", "token", err, why); aerr != nil {
			return iam.TokenResponse{}, aerr
		}
		return iam.TokenResponse{}, err
	}
	var notAfter time.Time // a lease's tokens end with the lease
	if au.Credential.Leased() {
		notAfter = au.Credential.ExpiresAt
	}
	raw, c, err := s.IAM.Tokens.MintUntil(iam.Claims{Subject: au.App.ID, ClientID: au.Credential.ClientID, InstanceID: au.Credential.InstanceID,
		Scope: AppScope, CatalogID: au.Credential.CatalogID, ConsumerOrgID: au.Credential.ConsumerOrgID}, notAfter)
	if err != nil {
		return iam.TokenResponse{}, err
	}
	p.SubjectKind, p.SubjectName = "app", au.App.Name
	if err := s.IAM.Record(ctx, p, "token.issue", "appCredential/"+au.Credential.ID, nil, "jti "+c.ID); err != nil {
		return iam.TokenResponse{}, err
	}
	return iam.TokenResponse{AccessToken: raw, TokenType: "bearer", Scope: c.Scope, ExpiresIn: c.Expiry - c.IssuedAt}, nil
}

// AuthenticateToken checks an app's token and that the credential it was
// minted for still authenticates (exists, unexpired, app enabled), for
// the surfaces that serve apps (published APIs).
func (s *Service) AuthenticateToken(ctx context.Context, bearer string) (Authenticated, iam.Claims, error) {
	c, err := s.IAM.Tokens.Verify(ctx, bearer)
	if err != nil || c.ConsumerOrgID == "" {
		return Authenticated{}, c, iam.ErrInvalidToken
	}
	cred, err := s.Store.AppCredentialByClientID(ctx, c.ClientID)
	switch {
	case isNotFound(err):
		return Authenticated{}, c, iam.ErrInvalidToken
	case err != nil:
		return Authenticated{}, c, err
	case cred.Leased() && !s.now().Before(cred.ExpiresAt), cred.AppID != c.Subject:
		return Authenticated{}, c, iam.ErrInvalidToken
	}
	a, err := s.Store.GetAppByID(ctx, cred.AppID)
	switch {
	case isNotFound(err):
		return Authenticated{}, c, iam.ErrInvalidToken
	case err != nil:
		return Authenticated{}, c, err
	case a.State != StateEnabled:
		return Authenticated{}, c, iam.ErrInvalidToken
	}
	return Authenticated{Credential: cred, App: a}, c, nil
}
