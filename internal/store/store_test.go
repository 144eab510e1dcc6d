package store_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// eachStore runs fn once per store kind, each on a fresh, isolated store.
func eachStore(t *testing.T, fn func(t *testing.T, s store.Store)) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			s, err := store.Open(context.Background(), storetest.DSN(t, kind), t.TempDir())
			if err != nil {
				t.Fatalf("open %s store: %v", kind, err)
			}
			t.Cleanup(func() { s.Close() })
			if s.Kind() != kind {
				t.Fatalf("Kind() = %q, want %q", s.Kind(), kind)
			}
			fn(t, s)
		})
	}
}

func TestMigrationsAppliedAndReady(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		if err := s.Ready(ctx); err != nil {
			t.Fatalf("Ready: %v", err)
		}
		v, err := s.SchemaVersion(ctx)
		if err != nil || v < 1 {
			t.Fatalf("SchemaVersion = %d, %v; want ≥ 1", v, err)
		}
	})
}

// Several processes starting at once against one database must apply each
// migration exactly once; goroutines opening the same database stand in for
// them (the advisory lock and the in-transaction re-check are per
// connection, so this exercises the same path).
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			dsn := storetest.DSN(t, kind)
			dir := t.TempDir()
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			stores := make(chan store.Store, 4)
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := store.Open(context.Background(), dsn, dir)
					if err != nil {
						errs <- err
						return
					}
					stores <- s
				}()
			}
			wg.Wait()
			close(errs)
			close(stores)
			for err := range errs {
				t.Errorf("concurrent open: %v", err)
			}
			for s := range stores {
				if err := s.Ready(context.Background()); err != nil {
					t.Errorf("Ready after concurrent open: %v", err)
				}
				s.Close()
			}
		})
	}
}

func TestDataKeysRoundTripAndRotation(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		mk, _ := secret.NewMasterKey()
		kr, err := secret.OpenKeyring(ctx, s, mk)
		if err != nil {
			t.Fatalf("OpenKeyring: %v", err)
		}
		aad := []byte("test/row-1")
		sealed, err := kr.Seal([]byte("canary-d5e1"), aad)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, []byte("canary-d5e1")) {
			t.Fatal("sealed value contains the plaintext")
		}

		// A second keyring on the same store (another replica) opens it.
		kr2, err := secret.OpenKeyring(ctx, s, mk)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := kr2.Open(sealed, aad); err != nil || string(pt) != "canary-d5e1" {
			t.Fatalf("Open on second keyring = %q, %v", pt, err)
		}
		if _, err := kr2.Open(sealed, []byte("test/row-2")); err == nil {
			t.Fatal("a sealed value opened under another record's aad")
		}

		// Data key rotation: new seals use the new key, old ones still open.
		if err := kr.RotateDataKey(ctx, s, mk); err != nil {
			t.Fatal(err)
		}
		sealed2, _ := kr.Seal([]byte("after"), aad)
		if pt, err := kr.Open(sealed, aad); err != nil || string(pt) != "canary-d5e1" {
			t.Fatalf("old value after data key rotation = %q, %v", pt, err)
		}

		// Master key rotation: the old master no longer opens the store,
		// the new one opens everything sealed before.
		mk2, _ := secret.NewMasterKey()
		if err := secret.RotateMasterKey(ctx, s, mk, mk2); err != nil {
			t.Fatalf("RotateMasterKey: %v", err)
		}
		if _, err := secret.OpenKeyring(ctx, s, mk); !errors.Is(err, secret.ErrWrongMasterKey) {
			t.Fatalf("old master after rotation: err = %v, want ErrWrongMasterKey", err)
		}
		kr3, err := secret.OpenKeyring(ctx, s, mk2)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			blob []byte
			want string
		}{{sealed, "canary-d5e1"}, {sealed2, "after"}} {
			if pt, err := kr3.Open(c.blob, aad); err != nil || string(pt) != c.want {
				t.Fatalf("after master rotation Open = %q, %v; want %q", pt, err, c.want)
			}
		}
		keys, _ := s.ListDataKeys(ctx)
		for _, k := range keys {
			if k.MasterFP != mk2.Fingerprint() || k.CreatedAt.After(time.Now()) {
				t.Fatalf("data key %s: fingerprint %s after rotation", k.ID, k.MasterFP)
			}
		}
	})
}

func TestWrongMasterKeyIsRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		mk, _ := secret.NewMasterKey()
		if _, err := secret.OpenKeyring(ctx, s, mk); err != nil {
			t.Fatal(err)
		}
		other, _ := secret.NewMasterKey()
		if _, err := secret.OpenKeyring(ctx, s, other); !errors.Is(err, secret.ErrWrongMasterKey) {
			t.Fatalf("err = %v, want ErrWrongMasterKey", err)
		}
	})
}
