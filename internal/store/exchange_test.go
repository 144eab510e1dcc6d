package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

// TestExchangeCredentials: the exchange's one-query lookup answers what
// GetClientCredential and APIKeyByHash answer, field for field, in every
// combination of found and missing — including a client credential owned
// by an identity, a locked and expiring key, and a key whose owner is gone.
func TestExchangeCredentials(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		at := clocktest.Epoch()
		if _, err := s.Bootstrap(ctx, newInstance("inst1", at)); err != nil {
			t.Fatal(err)
		}
		svc := store.Identity{ID: "sid-1", InstanceID: "inst1", Kind: store.KindServiceID, Name: "ci", Role: "developer", CreatedAt: at, CreatedBy: "test", UpdatedAt: at}
		if err := s.CreateIdentity(ctx, svc); err != nil {
			t.Fatal(err)
		}
		key := store.APIKey{ID: "ak-ci", InstanceID: "inst1", OwnerID: "sid-1", Name: "deploy", Description: "pipelines", KeyHash: "h-ci", KeyHint: "slk_…",
			ExpiresAt: at.Add(time.Hour), CreatedAt: at, CreatedBy: "test", LastUsedAt: at.Add(time.Minute)}
		if err := s.CreateAPIKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAPIKeyLocked(ctx, "inst1", "ak-ci", true); err != nil {
			t.Fatal(err)
		}
		app := store.ClientCredential{ClientID: "client-app", InstanceID: "inst1", Name: "app", Description: "an app", OwnerID: "sid-1",
			SecretHash: "shash-app", SecretHint: "slcs_…", CreatedAt: at, CreatedBy: "test", LastUsedAt: at.Add(2 * time.Minute)}
		if err := s.CreateClientCredential(ctx, app); err != nil {
			t.Fatal(err)
		}

		check := func(clientID, keyHash string) {
			t.Helper()
			got, err := s.ExchangeCredentials(ctx, clientID, keyHash)
			if err != nil {
				t.Fatalf("ExchangeCredentials(%q, %q): %v", clientID, keyHash, err)
			}
			c, cerr := s.GetClientCredential(ctx, clientID)
			if got.ClientFound != (cerr == nil) || got.Client != c {
				t.Fatalf("client %q: found %v, %+v; GetClientCredential: %+v, %v", clientID, got.ClientFound, got.Client, c, cerr)
			}
			k, kerr := s.APIKeyByHash(ctx, keyHash)
			if got.KeyFound != (kerr == nil) || got.Key != k {
				t.Fatalf("key %q: found %v, %+v; APIKeyByHash: %+v, %v", keyHash, got.KeyFound, got.Key, k, kerr)
			}
		}
		for _, c := range []string{"client-inst1", "client-app", "nobody"} {
			for _, k := range []string{"hash-inst1", "h-ci", "nothing"} {
				check(c, k)
			}
		}
		if got, _ := s.ExchangeCredentials(ctx, "client-app", "h-ci"); !got.ClientFound || got.Client.OwnerName != "ci" ||
			!got.KeyFound || !got.Key.Locked || got.Key.TokenEpoch != 1 || got.Key.OwnerRole != "developer" || !got.Key.ExpiresAt.Equal(at.Add(time.Hour)) {
			t.Fatalf("ExchangeCredentials = %+v", got)
		}
		// A key whose owner is gone is not found, as by APIKeyByHash.
		if err := s.DeleteIdentity(ctx, "inst1", store.KindServiceID, "ci"); err != nil {
			t.Fatal(err)
		}
		check("client-inst1", "h-ci")
		check("client-app", "hash-inst1")
	})
}
