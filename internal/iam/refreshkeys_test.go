package iam

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// TestRotationReachesOtherReplicasThroughTheChangeFeed: two control
// planes on one PostgreSQL database; a key rotated through one is the key
// the other signs with, and is in its JWKS, without waiting for the
// periodic reload (an hour here) — the change feed's NOTIFY brings it.
func TestRotationReachesOtherReplicasThroughTheChangeFeed(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t, "postgres")
	a, kr := openTestStore(t, dsn)
	b, err := store.Open(ctx, dsn, t.TempDir()) // a's keyring opens what b reads
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	clk := clocktest.New(0)
	tokens := func(st store.Store) *Tokens {
		return &Tokens{Store: st, Keyring: kr, Issuer: "http://sluice.test", Audience: "sluice", Lifetime: time.Hour, Now: clk.Now}
	}
	first, second := tokens(a), tokens(b)
	if err := first.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := second.Load(ctx); err != nil {
		t.Fatal(err)
	}
	before := second.ActiveKeyID()
	if before == "" || before != first.ActiveKeyID() {
		t.Fatalf("the replicas sign with %q and %q, want one key", before, first.ActiveKeyID())
	}

	changes, unsubscribe := b.SubscribeChanges()
	defer unsubscribe()
	followCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); second.Refresh(followCtx, changes, time.Hour) }()
	defer func() { stop(); <-done }()

	if err := first.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	rotated := first.ActiveKeyID()
	if rotated == before {
		t.Fatal("Rotate kept the key")
	}
	// Waiting for the NOTIFY to arrive is not a timed assertion: the
	// bound is only there so a lost notification fails instead of hanging.
	deadline := time.Now().Add(10 * time.Second)
	for second.ActiveKeyID() != rotated {
		if time.Now().After(deadline) {
			t.Fatalf("the other replica still signs with %s, not the rotated %s", second.ActiveKeyID(), rotated)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var kids []string
	for _, k := range second.JWKS().Keys {
		kids = append(kids, k.KeyID)
	}
	if len(kids) != 2 || (kids[0] != rotated && kids[1] != rotated) {
		t.Errorf("the other replica's JWKS lists %v, want the old %s and the rotated %s", kids, before, rotated)
	}
	raw, _, err := second.Mint(Claims{Subject: "user:alice", ClientID: "c1", InstanceID: "i1", Role: RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Verify(ctx, raw); err != nil {
		t.Errorf("a token the other replica signed with the rotated key does not verify here: %v", err)
	}
}
