package store_test

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

// On SQLite the grant barrier reads the WAL index's header, in the memory
// SQLite shares between its connections and processes, instead of asking
// PRAGMA data_version: while nothing is committed a request runs no
// query at all; a commit through another store on the file (an audit
// event, which changes nothing remembered) makes the next request ask
// once, and keeps what is remembered; a revocation is in the next answer.
func TestSQLiteBarrierReadsNothingWhileNothingIsCommitted(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the WAL index is mapped on Linux only")
	}
	ctx := context.Background()
	dir := t.TempDir()
	reader, writer := openTwo(t, dir)
	var reads atomic.Int64
	store.ObserveQueries(reader, func(kind string, _ float64) {
		if kind == "select" {
			reads.Add(1)
		}
	})
	at := clocktest.Epoch()
	n := newInstance("inst1", at)
	if err := writer.CreateInstance(ctx, n); err != nil {
		t.Fatal(err)
	}
	grant := granter(t, reader, n)
	for range 3 { // the first runs map the index and see its header
		grant()
	}
	queries, mapped := store.SQLiteBarrier(reader)
	if !mapped {
		t.Fatal("the barrier did not map the WAL index")
	}
	selects := reads.Load()
	for range 100 {
		if g := grant(); g.Revoked || !g.KeyExists {
			t.Fatalf("grant = %+v", g)
		}
	}
	if q, _ := store.SQLiteBarrier(reader); q != queries || reads.Load() != selects {
		t.Fatalf("100 requests with nothing committed asked data_version %d times and read %d rows, want none", q-queries, reads.Load()-selects)
	}

	if err := writer.InsertAuditEvents(ctx, []store.AuditEvent{{ID: "ev1", At: at, InstanceID: "inst1", Actor: "x", Action: "token.issue", Object: "o", Outcome: "success"}}); err != nil {
		t.Fatal(err)
	}
	grant()
	grant()
	if q, _ := store.SQLiteBarrier(reader); q != queries+1 || reads.Load() != selects {
		t.Fatalf("after an audit event: %d data_version runs, %d selects; want 1 and none", q-queries, reads.Load()-selects)
	}

	if err := writer.RevokeToken(ctx, "jti-1", at.Add(time.Hour), at); err != nil {
		t.Fatal(err)
	}
	if g := grant(); !g.Revoked {
		t.Fatalf("the next GrantState after the revocation = %+v", g)
	}
}

// A revocation committed by another process (as `sluice instances delete`
// is) is in the very next answer of a store whose barrier reads the WAL
// index, though nothing in this process wrote.
func TestSQLiteBarrierSeesAnotherProcessCommit(t *testing.T) {
	if dir := os.Getenv("SLUICE_STORE_TEST_REVOKE_IN"); dir != "" {
		// The other process: revoke, and go.
		s, err := store.Open(context.Background(), "", dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		at := clocktest.Epoch()
		if err := s.RevokeToken(context.Background(), "jti-1", at.Add(time.Hour), at); err != nil {
			t.Fatal(err)
		}
		return
	}
	ctx := context.Background()
	dir := t.TempDir()
	reader, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	at := clocktest.Epoch()
	n := newInstance("inst1", at)
	if err := reader.CreateInstance(ctx, n); err != nil {
		t.Fatal(err)
	}
	grant := granter(t, reader, n)
	for range 3 {
		if g := grant(); g.Revoked {
			t.Fatalf("fresh grant = %+v", g)
		}
	}
	queries, _ := store.SQLiteBarrier(reader)
	grant()
	if q, _ := store.SQLiteBarrier(reader); runtime.GOOS == "linux" && q != queries {
		t.Fatal("a repeated GrantState asked data_version")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteBarrierSeesAnotherProcessCommit$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SLUICE_STORE_TEST_REVOKE_IN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the other process: %v\n%s", err, out)
	}
	if g := grant(); !g.Revoked {
		t.Fatalf("after another process revoked the token, GrantState = %+v", g)
	}
}

// granter asks s, as a request with token jti-1 of n's admin does, for
// the grant's state.
func granter(t *testing.T, s store.Store, n store.NewInstance) func() store.GrantState {
	return func() store.GrantState {
		t.Helper()
		g, err := s.GrantState(context.Background(), n.Credential.ClientID, n.Key.ID, n.Admin.ID, "jti-1")
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
}

func openTwo(t *testing.T, dir string) (a, b store.Store) {
	t.Helper()
	ctx := context.Background()
	a, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if b, err = store.Open(ctx, "", dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}
