package apps_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// replica is a second control plane on e's store: its own connections,
// its own services and change feed (which hears nothing of e's changes),
// the same keys and clock.
func (e *env) replica(t *testing.T) *apps.Service {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, e.dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := secret.OpenKeyring(ctx, st, e.mk)
	if err != nil {
		t.Fatal(err)
	}
	aud := iam.NewAuditor(st)
	t.Cleanup(aud.Close)
	tokens := &iam.Tokens{Store: st, Keyring: kr, Issuer: "http://sluice.test", Audience: "sluice", Lifetime: time.Hour, Now: e.clock.Now}
	if err := tokens.Init(ctx); err != nil {
		t.Fatal(err)
	}
	return &apps.Service{Store: st, IAM: &iam.Service{Store: st, Tokens: tokens, Audit: aud, Now: e.clock.Now}, Now: e.clock.Now}
}

// Two control planes on one PostgreSQL: lease expiry, renewal and
// revocation made or reached on one are enforced by the other from the
// store, with no sweeper running and nothing on its change feed (which is
// per process).
func TestLeasesAcrossReplicas(t *testing.T) {
	e := newEnv(t, "postgres")
	ctx := context.Background()
	b := e.replica(t)
	var heard []apps.Event
	b.Watch(func(ev apps.Event) { heard = append(heard, ev) })
	path := e.app(t, &apps.CredentialPolicy{DefaultTTL: 10 * time.Minute, MaxTTL: time.Hour})
	_, l, err := e.svc.CreateLease(ctx, e.dev, path, apps.CredentialInput{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	atB := func() error {
		_, _, err := b.AuthenticateClient(ctx, l.Credential.ClientID, l.Secret)
		return err
	}
	if err := atB(); err != nil {
		t.Fatalf("a fresh lease made at A is refused at B: %v", err)
	}
	tok, err := b.ClientCredentialsGrant(ctx, iam.TokenRequest{ClientID: l.Credential.ClientID, ClientSecret: l.Secret})
	if err != nil {
		t.Fatal(err)
	}
	// Renewed at A: B honours the new expiry past the old one.
	e.clock.Advance(5 * time.Minute)
	if _, _, err := e.svc.RenewLease(ctx, e.dev, path, l.Credential.ID, 20*time.Minute); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Minute) // past the first expiry, before the renewed one
	if err := atB(); err != nil {
		t.Fatalf("a lease renewed at A is refused at B before its new expiry: %v", err)
	}
	// Expired: B refuses it although no sweeper ran anywhere.
	e.clock.Advance(10*time.Minute + time.Millisecond)
	if err := atB(); err != iam.ErrBadCredentials {
		t.Fatalf("an expired lease at B: %v, want bad credentials", err)
	}
	if n, _ := e.st.ListAppCredentials(ctx, l.Credential.AppID, store.AppCredentialFilter{}, store.Page{}); len(n) != 1 {
		t.Fatalf("the test expects the expired lease still in the store (no sweeper), found %d", len(n))
	}
	if _, _, err := b.AuthenticateToken(ctx, tok.AccessToken); err == nil {
		t.Error("a token of an expired lease authenticates at B")
	}
	// Revoked at A: refused at B at once, and so are its tokens.
	_, l2, err := e.svc.CreateLease(ctx, e.dev, path, apps.CredentialInput{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tok2, err := b.ClientCredentialsGrant(ctx, iam.TokenRequest{ClientID: l2.Credential.ClientID, ClientSecret: l2.Secret})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RevokeLease(ctx, e.dev, path, l2.Credential.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.AuthenticateClient(ctx, l2.Credential.ClientID, l2.Secret); err != iam.ErrBadCredentials {
		t.Errorf("a lease revoked at A at B: %v, want bad credentials", err)
	}
	if _, _, err := b.AuthenticateToken(ctx, tok2.AccessToken); err != iam.ErrInvalidToken {
		t.Errorf("the token of a lease revoked at A at B: %v, want invalid", err)
	}
	if len(heard) != 0 {
		t.Errorf("B's change feed heard of A's changes (it is per process): %+v", heard)
	}
}
