package iam

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// Both endpoints' refresh tokens are one checksummed format (slrf_, not
// the bundle tokens' slrt_) in one table: each endpoint takes only its
// own, a second use is refused at both, and both go with their API key.
func TestRefreshTokensOfBothEndpoints(t *testing.T) {
	ctx := context.Background()
	svc, _, creds := newTestService(t)
	admin := Principal{InstanceID: creds.InstanceID, SubjectKind: store.KindUser, SubjectName: "admin", Role: RoleAdmin}
	key, v, err := svc.CreateAPIKey(ctx, admin, APIKeyInput{Name: "both"})
	if err != nil {
		t.Fatal(err)
	}
	platform := func(rt string) (PlatformToken, error) {
		return svc.PlatformExchange(ctx, PlatformRequest{GrantType: "refresh_token", ClientID: ToolkitClientID,
			ClientSecret: secret.New(ToolkitClientSecret), RefreshToken: secret.New(rt)})
	}
	apic, err := svc.PlatformExchange(ctx, PlatformRequest{GrantType: "api_key", ClientID: ToolkitClientID,
		ClientSecret: secret.New(ToolkitClientSecret), APIKey: v})
	if err != nil {
		t.Fatal(err)
	}
	ibm, err := svc.ExchangeAPIKeyAlone(ctx, KeyExchangeRequest{APIKey: v})
	if err != nil {
		t.Fatal(err)
	}
	for name, rt := range map[string]string{"POST /api/token": apic.RefreshToken, "POST /identity/token": ibm.RefreshToken.Reveal()} {
		if !strings.HasPrefix(rt, "slrf_") || !wellFormed(rt, "slrf_") || !SecretPattern.MatchString(rt) {
			t.Errorf("refresh token of %s = %.9s…, want a checksummed slrf_ secret", name, rt)
		}
	}
	// Each endpoint refuses the other's, without using it up.
	if _, err := platform(ibm.RefreshToken.Reveal()); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("an /identity/token refresh token at /api/token: %v, want refused", err)
	}
	if _, err := svc.Refresh(ctx, KeyExchangeRequest{RefreshToken: secret.New(apic.RefreshToken)}); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("an /api/token refresh token at /identity/token: %v, want refused", err)
	}
	next, err := platform(apic.RefreshToken)
	if err != nil {
		t.Fatalf("the /api/token refresh token at its own endpoint: %v", err)
	}
	if _, err := platform(apic.RefreshToken); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("an /api/token refresh token used twice: %v", err)
	}
	if _, err := svc.Refresh(ctx, KeyExchangeRequest{RefreshToken: ibm.RefreshToken}); err != nil {
		t.Fatalf("the /identity/token refresh token at its own endpoint: %v", err)
	}
	// Deleting the key takes the platform's refresh tokens with it, in the store.
	if err := svc.DeleteAPIKey(ctx, admin, key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Store.TakeRefreshToken(ctx, hashSecret(secret.New(next.RefreshToken)), svc.now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refresh token of a deleted key is still in the store: %v", err)
	}
}
