package iam

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// openTestStore opens a store of dsn ("" for SQLite in a temporary
// directory), closed when the test ends, with a keyring under a fresh
// master key.
func openTestStore(tb testing.TB, dsn string) (store.Store, *secret.Keyring) {
	tb.Helper()
	st, err := store.Open(context.Background(), dsn, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	mk, _ := secret.NewMasterKey()
	kr, err := secret.OpenKeyring(context.Background(), st, mk)
	if err != nil {
		tb.Fatal(err)
	}
	return st, kr
}

// newTestService is a Service over a fresh SQLite store with a fake clock.
func newTestService(t *testing.T) (*Service, *clocktest.Fake, *InitialCredentials) {
	t.Helper()
	ctx := context.Background()
	st, kr := openTestStore(t, "")
	clk := clocktest.New(0)
	aud := NewAuditor(st)
	t.Cleanup(aud.Close)
	tokens := &Tokens{Store: st, Keyring: kr, Issuer: "http://sluice.test", Audience: "sluice", Lifetime: 12 * time.Hour,
		MaxLifetime: 12 * time.Hour, Now: clk.Now}
	if err := tokens.Init(ctx); err != nil {
		t.Fatal(err)
	}
	svc := &Service{Store: st, Tokens: tokens, Audit: aud, Now: clk.Now, APIKeyTokenLifetime: time.Hour, RefreshTokenLifetime: 24 * time.Hour,
		ApplicationTokenLifetime: 15 * time.Minute}
	creds, err := svc.Bootstrap(ctx)
	if err != nil || creds == nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return svc, clk, creds
}

// TestRefreshTokensAreSingleUseAndExpire drives refresh tokens through
// their life on the fake clock: lifetimes as configured, one use each, a
// refused use changes nothing, expiry after the refresh lifetime.
func TestRefreshTokensAreSingleUseAndExpire(t *testing.T) {
	ctx := context.Background()
	svc, clk, creds := newTestService(t)
	tok, err := svc.ExchangeAPIKeyAlone(ctx, KeyExchangeRequest{APIKey: secret.New(creds.APIKey)})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Expiry-tok.IssuedAt != 3600 || tok.Expiry != clk.Now().Add(time.Hour).Unix() {
		t.Fatalf("token lives %d s until %d; want 3600 s from the clock", tok.Expiry-tok.IssuedAt, tok.Expiry)
	}
	p, err := svc.Authenticate(ctx, tok.AccessToken, "")
	if err != nil || p.SubjectName != "admin" || p.ClientID != "" {
		t.Fatalf("authenticate with the bearer token alone: %+v, %v", p, err)
	}
	if _, err := svc.Authenticate(ctx, tok.AccessToken, creds.ClientID); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a client id header that is not the token's: %v", err)
	}

	clk.Add(23 * time.Hour)
	next, err := svc.Refresh(ctx, KeyExchangeRequest{RefreshToken: tok.RefreshToken})
	if err != nil {
		t.Fatalf("refresh within its lifetime: %v", err)
	}
	if _, err := svc.Refresh(ctx, KeyExchangeRequest{RefreshToken: tok.RefreshToken}); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("second use: %v", err)
	}
	// Presented by a client it was not issued to: refused, and not used up.
	if _, err := svc.Refresh(ctx, KeyExchangeRequest{RefreshToken: next.RefreshToken, ClientID: creds.ClientID, ClientSecret: secret.New(creds.ClientSecret)}); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("another client: %v", err)
	}
	clk.Add(24*time.Hour - time.Second)
	last, err := svc.Refresh(ctx, KeyExchangeRequest{RefreshToken: next.RefreshToken})
	if err != nil {
		t.Fatalf("refresh a second before it expires, after a refused try: %v", err)
	}
	clk.Add(24 * time.Hour)
	if _, err := svc.Refresh(ctx, KeyExchangeRequest{RefreshToken: last.RefreshToken}); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("expired refresh token: %v", err)
	}
}

// TestRefreshFollowsItsKey: an API key that expires takes its refresh
// tokens' use with it.
func TestRefreshFollowsItsKey(t *testing.T) {
	ctx := context.Background()
	svc, clk, _ := newTestService(t)
	admin := Principal{InstanceID: "", SubjectKind: store.KindUser, SubjectName: "admin", Role: RoleAdmin}
	insts, err := svc.Store.ListInstances(ctx)
	if err != nil || len(insts) != 1 {
		t.Fatal(insts, err)
	}
	admin.InstanceID = insts[0].ID
	_, v, err := svc.CreateAPIKey(ctx, admin, APIKeyInput{Name: "short", ExpiresAt: clk.Now().Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.ExchangeAPIKeyAlone(ctx, KeyExchangeRequest{APIKey: v})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour)
	if _, err := svc.Refresh(ctx, KeyExchangeRequest{RefreshToken: tok.RefreshToken}); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("refresh with an expired key: %v", err)
	}
	if _, err := svc.ExchangeAPIKeyAlone(ctx, KeyExchangeRequest{APIKey: v}); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("exchange of an expired key: %v", err)
	}
}

// TestApplicationTokensLiveTheirOwnLifetime: the Airbyte grant mints with
// its configured lifetime, not the default.
func TestApplicationTokensLiveTheirOwnLifetime(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newTestService(t)
	insts, _ := svc.Store.ListInstances(ctx)
	admin, err := svc.Store.GetIdentity(ctx, insts[0].ID, store.KindUser, "admin")
	if err != nil {
		t.Fatal(err)
	}
	p := Principal{InstanceID: insts[0].ID, SubjectID: admin.ID, SubjectKind: store.KindUser, SubjectName: "admin", Role: RoleAdmin}
	app, sec, err := svc.CreateApplication(ctx, p, "etl")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := svc.ApplicationToken(ctx, TokenRequest{ClientID: app.ClientID, ClientSecret: sec})
	if err != nil || resp.ExpiresIn != 900 {
		t.Fatalf("application token: expires_in %d, %v; want 900", resp.ExpiresIn, err)
	}
	if got, err := svc.ListApplications(ctx, p, ListRequest{}); err != nil || len(got.Items) != 1 || got.Items[0].ClientID != app.ClientID {
		t.Fatalf("list: %v, %v", got, err)
	}
	other := p
	other.SubjectID = "usr-someone-else"
	if _, err := svc.GetApplication(ctx, other, app.ClientID); KindOf(err) != KindNotFound {
		t.Fatalf("someone else's application: %v", err)
	}
}
