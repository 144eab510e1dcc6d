package iam

import (
	"context"
	"testing"

	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// Locking an API key starts a new token epoch (issue 11 item 11): its
// refresh tokens from before the lock do not come back when it is
// unlocked, at /identity/token nor at /api/token, while tokens got after
// the unlock — and those they are refreshed into — work.
func TestRefreshTokensDoNotSurviveALock(t *testing.T) {
	ctx := context.Background()
	svc, _, creds := newTestService(t)
	admin := Principal{InstanceID: creds.InstanceID, SubjectKind: store.KindUser, SubjectName: "admin", Role: RoleAdmin}
	key, v, err := svc.CreateAPIKey(ctx, admin, APIKeyInput{Name: "epoch"})
	if err != nil {
		t.Fatal(err)
	}
	apicRefresh := func(rt string) (PlatformToken, error) {
		return svc.PlatformExchange(ctx, PlatformRequest{GrantType: "refresh_token", ClientID: ToolkitClientID,
			ClientSecret: secret.New(ToolkitClientSecret), RefreshToken: secret.New(rt)})
	}
	apicKey := func() PlatformToken {
		t.Helper()
		tok, err := svc.PlatformExchange(ctx, PlatformRequest{GrantType: "api_key", ClientID: ToolkitClientID,
			ClientSecret: secret.New(ToolkitClientSecret), APIKey: v})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	ibmKey := func() KeyToken {
		t.Helper()
		tok, err := svc.ExchangeAPIKeyAlone(ctx, KeyExchangeRequest{APIKey: v})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	works := func(label, access string) {
		t.Helper()
		if _, err := svc.AuthenticateBearer(ctx, access); err != nil {
			t.Errorf("%s: the access token is refused: %v", label, err)
		}
	}
	lockCycle := func() {
		t.Helper()
		for _, locked := range []bool{true, false} {
			if _, err := svc.SetAPIKeyLocked(ctx, admin, key.ID, locked); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Twice, so that epochs past the first are covered too.
	for round := 0; round < 2; round++ {
		oldAPIC, oldIBM := apicKey(), ibmKey()
		lockCycle()
		if _, err := apicRefresh(oldAPIC.RefreshToken); err == nil {
			t.Errorf("round %d: /api/token refreshed a token from before the lock", round)
		}
		if _, err := svc.Refresh(ctx, KeyExchangeRequest{RefreshToken: oldIBM.RefreshToken}); err == nil {
			t.Errorf("round %d: /identity/token refreshed a token from before the lock", round)
		}
		if _, err := svc.AuthenticateBearer(ctx, oldIBM.AccessToken); err == nil {
			t.Errorf("round %d: an /identity/token access token from before the lock works again", round)
		}

		newAPIC, newIBM := apicKey(), ibmKey()
		works("/api/token after the unlock", newAPIC.AccessToken)
		works("/identity/token after the unlock", newIBM.AccessToken)
		nextAPIC, err := apicRefresh(newAPIC.RefreshToken)
		if err != nil {
			t.Fatalf("round %d: /api/token refresh after the unlock: %v", round, err)
		}
		works("/api/token refreshed", nextAPIC.AccessToken)
		nextIBM, err := svc.Refresh(ctx, KeyExchangeRequest{RefreshToken: newIBM.RefreshToken})
		if err != nil {
			t.Fatalf("round %d: /identity/token refresh after the unlock: %v", round, err)
		}
		works("/identity/token refreshed", nextIBM.AccessToken)
	}
}
