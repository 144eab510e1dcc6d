package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

func newInstance(id string, at time.Time) store.NewInstance {
	admin := store.Identity{ID: "usr-" + id, InstanceID: id, Kind: store.KindUser, Name: "admin", Role: "admin", CreatedAt: at, CreatedBy: "test", UpdatedAt: at}
	return store.NewInstance{
		Instance:   store.Instance{ID: id, Name: id, CreatedAt: at},
		Admin:      admin,
		Key:        store.APIKey{ID: "ak-" + id, InstanceID: id, OwnerID: admin.ID, Name: "initial", KeyHash: "hash-" + id, KeyHint: "slk_…", CreatedAt: at, CreatedBy: "test"},
		Credential: store.ClientCredential{ClientID: "client-" + id, InstanceID: id, Name: "initial", SecretHash: "shash-" + id, SecretHint: "slcs_…", CreatedAt: at, CreatedBy: "test"},
	}
}

func TestIAMRecords(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		at := clocktest.Epoch()
		done, err := s.Bootstrap(ctx, newInstance("inst1", at))
		if err != nil || !done {
			t.Fatalf("first Bootstrap = %v, %v", done, err)
		}
		if done, err := s.Bootstrap(ctx, newInstance("inst2", at)); err != nil || done {
			t.Fatalf("second Bootstrap = %v, %v; want false, nil", done, err)
		}
		if err := s.CreateInstance(ctx, newInstance("inst2", at)); err != nil {
			t.Fatal(err)
		}
		if ins, _ := s.ListInstances(ctx); len(ins) != 2 {
			t.Fatalf("instances: %v", ins)
		}

		// Identities: conflicts, reads, updates, not found.
		svc := store.Identity{ID: "sid-1", InstanceID: "inst1", Kind: store.KindServiceID, Name: "ci", Role: "developer", CreatedAt: at, CreatedBy: "test", UpdatedAt: at}
		if err := s.CreateIdentity(ctx, svc); err != nil {
			t.Fatal(err)
		}
		dup := svc
		dup.ID = "sid-2"
		if err := s.CreateIdentity(ctx, dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate name: %v, want ErrConflict", err)
		}
		dup.InstanceID = "inst2" // the same name in another instance is fine
		if err := s.CreateIdentity(ctx, dup); err != nil {
			t.Fatalf("same name in another instance: %v", err)
		}
		svc.Role, svc.Description = "viewer", "demoted"
		if err := s.UpdateIdentity(ctx, svc); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetIdentity(ctx, "inst1", store.KindServiceID, "ci")
		if err != nil || got.Role != "viewer" || got.Description != "demoted" || !got.CreatedAt.Equal(at) {
			t.Fatalf("GetIdentity = %+v, %v", got, err)
		}
		if _, err := s.GetIdentity(ctx, "inst2", store.KindUser, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing identity: %v", err)
		}

		// API keys: lookup by hash joins the owner; lock; per-owner names.
		exp := at.Add(time.Hour)
		k := store.APIKey{ID: "ak-ci", InstanceID: "inst1", OwnerID: "sid-1", Name: "deploy", KeyHash: "h-ci", KeyHint: "slk_…", ExpiresAt: exp, CreatedAt: at, CreatedBy: "test"}
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		k2 := k
		k2.ID, k2.KeyHash = "ak-ci2", "h-ci2"
		if err := s.CreateAPIKey(ctx, k2); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second key of one owner with one name: %v", err)
		}
		byHash, err := s.APIKeyByHash(ctx, "h-ci")
		if err != nil || byHash.OwnerName != "ci" || byHash.OwnerRole != "viewer" || !byHash.ExpiresAt.Equal(exp) {
			t.Fatalf("APIKeyByHash = %+v, %v", byHash, err)
		}
		if err := s.SetAPIKeyLocked(ctx, "inst2", "ak-ci", true); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("locking another instance's key: %v", err)
		}
		if err := s.SetAPIKeyLocked(ctx, "inst1", "ak-ci", true); err != nil {
			t.Fatal(err)
		}
		// Each lock starts a new token epoch; unlocking keeps it.
		if err := s.SetAPIKeyLocked(ctx, "inst1", "ak-ci", false); err != nil {
			t.Fatal(err)
		}
		if k, _ := s.GetAPIKey(ctx, "inst1", "ak-ci"); k.Locked || k.TokenEpoch != 1 {
			t.Fatalf("after lock and unlock: locked=%v epoch %d, want 1", k.Locked, k.TokenEpoch)
		}
		if err := s.SetAPIKeyLocked(ctx, "inst1", "ak-ci", true); err != nil {
			t.Fatal(err)
		}
		if keys, _ := s.ListAPIKeys(ctx, "inst1", "sid-1", store.Page{}); len(keys) != 1 || !keys[0].Locked {
			t.Fatalf("ListAPIKeys by owner = %+v", keys)
		}
		if keys, _ := s.ListAPIKeys(ctx, "inst1", "", store.Page{}); len(keys) != 2 {
			t.Fatalf("ListAPIKeys of the instance = %d keys", len(keys))
		}

		// GrantState reads everything a token depends on in one go.
		g, err := s.GrantState(ctx, "client-inst1", "ak-ci", "sid-1", "jti-1")
		if err != nil || !g.ClientExists || g.ClientInstance != "inst1" || !g.KeyExists || !g.KeyLocked || g.SubjectRole != "viewer" || g.SubjectKind != store.KindServiceID || g.Revoked || g.KeyEpoch != 2 {
			t.Fatalf("GrantState = %+v, %v", g, err)
		}
		if err := s.RevokeToken(ctx, "jti-1", at.Add(time.Hour), at); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeToken(ctx, "jti-1", at.Add(time.Hour), at); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		// Deleting the owner takes its keys with it.
		if err := s.DeleteIdentity(ctx, "inst1", store.KindServiceID, "ci"); err != nil {
			t.Fatal(err)
		}
		g, _ = s.GrantState(ctx, "client-inst1", "ak-ci", "sid-1", "jti-1")
		if g.KeyExists || g.SubjectRole != "" || !g.Revoked {
			t.Fatalf("GrantState after deleting the owner = %+v", g)
		}

		// Client credentials: owned by an identity, name conflicts.
		c := store.ClientCredential{ClientID: "client-app", InstanceID: "inst1", Name: "app", OwnerID: "usr-inst1", SecretHash: "x", SecretHint: "slcs_…", CreatedAt: at, CreatedBy: "test"}
		if err := s.CreateClientCredential(ctx, c); err != nil {
			t.Fatal(err)
		}
		c.ClientID = "client-app2"
		if err := s.CreateClientCredential(ctx, c); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate credential name: %v", err)
		}
		got2, err := s.GetClientCredentialByName(ctx, "inst1", "app")
		if err != nil || got2.OwnerName != "admin" || got2.OwnerRole != "admin" {
			t.Fatalf("owned credential = %+v, %v", got2, err)
		}
		if err := s.TouchClientCredential(ctx, "client-app", at.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteClientCredential(ctx, "inst1", "app"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteClientCredential(ctx, "inst1", "app"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting twice: %v", err)
		}

		// Audit: batch insert, filters by actor and time, newest first.
		var evs []store.AuditEvent
		for i := 0; i < 5; i++ {
			actor := "user:admin"
			if i%2 == 1 {
				actor = "serviceId:ci"
			}
			evs = append(evs, store.AuditEvent{ID: fmt.Sprintf("ev%d", i), At: at.Add(time.Duration(i) * time.Minute), InstanceID: "inst1",
				Actor: actor, Action: "x.create", Object: "x", Outcome: "success"})
		}
		evs = append(evs, store.AuditEvent{ID: "other", At: at, InstanceID: "inst2", Actor: "user:admin", Action: "x", Object: "x", Outcome: "success"})
		if err := s.InsertAuditEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		list, _ := s.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "inst1"})
		if len(list) != 5 || list[0].ID != "ev4" {
			t.Fatalf("audit list = %d events, first %q", len(list), list[0].ID)
		}
		list, _ = s.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "inst1", Actor: "serviceId:ci"})
		if len(list) != 2 {
			t.Fatalf("audit by actor = %d events", len(list))
		}
		list, _ = s.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "inst1", Since: at.Add(time.Minute), Until: at.Add(3 * time.Minute)})
		if len(list) != 2 || list[0].ID != "ev2" || list[1].ID != "ev1" {
			t.Fatalf("audit by time = %+v", list)
		}
		// Below a cursor: older by time, then by id at the same time.
		tie := store.AuditEvent{ID: "ev2b", At: at.Add(2 * time.Minute), InstanceID: "inst1", Actor: "user:admin", Action: "x.create", Object: "x", Outcome: "success"}
		if err := s.InsertAuditEvents(ctx, []store.AuditEvent{tie}); err != nil {
			t.Fatal(err)
		}
		list, _ = s.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "inst1", Limit: 2, Below: store.AuditCursor{At: tie.At, ID: "ev2b"}})
		if len(list) != 2 || list[0].ID != "ev2" || list[1].ID != "ev1" {
			t.Fatalf("audit below ev2b = %+v", list)
		}
		list, _ = s.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "inst1", Actor: "user:admin", Below: store.AuditCursor{At: at.Add(4 * time.Minute), ID: "ev4"}})
		if len(list) != 3 || list[0].ID != "ev2b" {
			t.Fatalf("admin's audit below ev4 = %+v", list)
		}

		// Signing keys round-trip in creation order.
		for i, kid := range []string{"k2", "k1"} {
			if err := s.InsertSigningKey(ctx, store.SigningKey{KID: kid, Alg: "EdDSA", SealedPrivate: []byte{1, 2}, PublicJWK: "{}", CreatedAt: at.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		sks, _ := s.ListSigningKeys(ctx)
		if len(sks) != 2 || sks[0].KID != "k2" || string(sks[0].SealedPrivate) != "\x01\x02" {
			t.Fatalf("signing keys = %+v", sks)
		}
	})
}

// Revocations are pruned by the caller's clock, never the machine's: a
// revocation written at a time years away from the wall clock (either way)
// holds until the caller's clock passes the token's expiry.
func TestRevocationsPrunedByCallersClock(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		if _, err := s.Bootstrap(ctx, newInstance("inst1", clocktest.Epoch())); err != nil {
			t.Fatal(err)
		}
		for _, base := range []time.Time{clocktest.Epoch().AddDate(-20, 0, 0), clocktest.Epoch().AddDate(20, 0, 0)} {
			jti := "jti-" + base.Format("2006")
			if err := s.RevokeToken(ctx, jti, base.Add(time.Hour), base); err != nil {
				t.Fatal(err)
			}
			if g, err := s.GrantState(ctx, "client-inst1", "", "", jti); err != nil || !g.Revoked {
				t.Fatalf("a revocation written at %v with the token valid for an hour is gone: %+v, %v", base, g, err)
			}
			// Another revocation once the first token has expired by the
			// caller's clock prunes the first.
			if err := s.RevokeToken(ctx, jti+"-later", base.Add(3*time.Hour), base.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			if g, _ := s.GrantState(ctx, "client-inst1", "", "", jti); g.Revoked {
				t.Fatalf("the revocation of a token expired by the caller's clock was kept")
			}
		}
	})
}

func TestLeadershipIsExclusive(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	ctx := context.Background()
	a, err := store.Open(ctx, dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := store.Open(ctx, dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, releaseA, err := a.AcquireLeader(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	// B cannot lead while A does: its attempt ends with its context.
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, _, err := b.AcquireLeader(short, "test"); err == nil {
		t.Fatal("two processes lead at once")
	}
	releaseA()
	_, releaseB, err := b.AcquireLeader(ctx, "test")
	if err != nil {
		t.Fatalf("B does not take over after A released: %v", err)
	}
	releaseB()
}

func TestPutSettingReplaces(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		if _, err := s.GetSetting(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing setting: %v", err)
		}
		for _, v := range []string{"one", "two"} {
			if err := s.PutSetting(ctx, "k", v); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetSetting(ctx, "k"); err != nil || got != v {
				t.Fatalf("after PutSetting(%q): %q %v", v, got, err)
			}
		}
		if err := s.PutSettingIfAbsent(ctx, "k", "three"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetSetting(ctx, "k"); got != "two" {
			t.Errorf("PutSettingIfAbsent replaced it: %q", got)
		}
	})
}

// A leader that stops renewing (here its pool is closed under it, as a
// leader cut off from the database) loses the lease: it is told so, and
// once the lease expires by the database's clock another store takes
// over without the first ever releasing it.
func TestLeadershipExpiresWithoutRenewal(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	ctx := context.Background()
	a, err := store.Open(ctx, dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.Open(ctx, dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	lostA, _, err := a.AcquireLeader(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	select {
	case <-lostA:
	case <-time.After(30 * time.Second):
		t.Fatal("a leader whose renewals fail was never told it lost the lease")
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lostB, releaseB, err := b.AcquireLeader(wait, "test")
	if err != nil {
		t.Fatalf("B never took over the expired lease: %v", err)
	}
	select {
	case <-lostB:
		t.Fatal("B lost a lease it renews")
	default:
	}
	releaseB()
}
