package store_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// GrantState answers a repeated question without reading the database,
// yet every change to what it reads — made through the same store, or
// through another one on the same database (another replica on
// PostgreSQL; another process, such as an operator's command, on SQLite) —
// is in the very next answer: revocation bites at once (README).
func TestGrantStateRemembersButNeverServesStale(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		for _, other := range []bool{false, true} {
			name := kind + "/same store"
			if other {
				name = kind + "/another store"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				dsn, dir := storetest.DSN(t, kind), t.TempDir()
				reader, err := store.Open(ctx, dsn, dir)
				if err != nil {
					t.Fatal(err)
				}
				defer reader.Close()
				writer := reader
				if other {
					if writer, err = store.Open(ctx, dsn, dir); err != nil {
						t.Fatal(err)
					}
					defer writer.Close()
				}
				var reads atomic.Int64
				store.ObserveQueries(reader, func(kind string, _ float64) {
					if kind == "select" {
						reads.Add(1)
					}
				})
				// The PostgreSQL listener's first signal says it listens.
				listening, stop := reader.SubscribeChanges()
				defer stop()
				at := clocktest.Epoch()
				n := newInstance("inst1", at)
				if err := writer.CreateInstance(ctx, n); err != nil {
					t.Fatal(err)
				}
				grant := func() store.GrantState {
					t.Helper()
					g, err := reader.GrantState(ctx, n.Credential.ClientID, n.Key.ID, n.Admin.ID, "jti-1")
					if err != nil {
						t.Fatal(err)
					}
					return g
				}
				if g := grant(); !g.ClientExists || !g.KeyExists || g.KeyLocked || g.SubjectRole != "admin" || g.Revoked {
					t.Fatalf("fresh grant = %+v", g)
				}
				if kind == "postgres" {
					<-listening // nothing is remembered before
				}
				grant()
				before := reads.Load()
				grant()
				if reads.Load() != before {
					t.Fatal("a repeated GrantState read the database")
				}

				steps := []struct {
					what   string
					change func() error
					check  func(g store.GrantState) bool
				}{
					{"key locked", func() error { return writer.SetAPIKeyLocked(ctx, "inst1", n.Key.ID, true) },
						func(g store.GrantState) bool { return g.KeyLocked }},
					{"key unlocked (a new epoch)", func() error { return writer.SetAPIKeyLocked(ctx, "inst1", n.Key.ID, false) },
						func(g store.GrantState) bool { return !g.KeyLocked && g.KeyEpoch != 0 }},
					{"role demoted", func() error {
						id := n.Admin
						id.Role = "viewer"
						return writer.UpdateIdentity(ctx, id)
					}, func(g store.GrantState) bool { return g.SubjectRole == "viewer" }},
					{"token revoked", func() error { return writer.RevokeToken(ctx, "jti-1", at.Add(time.Hour), at) },
						func(g store.GrantState) bool { return g.Revoked }},
					{"key deleted", func() error { return writer.DeleteAPIKey(ctx, "inst1", n.Key.ID) },
						func(g store.GrantState) bool { return !g.KeyExists }},
					{"credential deleted", func() error { return writer.DeleteClientCredential(ctx, "inst1", n.Credential.Name) },
						func(g store.GrantState) bool { return !g.ClientExists }},
					{"identity deleted", func() error { return writer.DeleteIdentity(ctx, "inst1", store.KindUser, n.Admin.Name) },
						func(g store.GrantState) bool { return g.SubjectRole == "" }},
				}
				for _, st := range steps {
					grant() // remembered, as before the change
					grant()
					if err := st.change(); err != nil {
						t.Fatalf("%s: %v", st.what, err)
					}
					if g := grant(); !st.check(g) {
						t.Fatalf("%s: the next GrantState = %+v", st.what, g)
					}
				}
			})
		}
	}
}
