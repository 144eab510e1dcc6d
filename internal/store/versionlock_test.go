package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// Every write to the grant tables bumps one version row (migrations 0025,
// 0026), a lock all such writers share. Two transactions that each lock a
// row the other then needs must not deadlock through it: here A updates
// an identity, B a key, then A the same key — A waits for B, and B must
// be able to commit. With the bump taken at each row (0025's triggers),
// B waited for the version A held while A waited for B's key: PostgreSQL
// failed one of them as a deadlock.
func TestVersionRowsCannotDeadlock(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := newInstance("inst1", clocktest.Epoch())
	if err := st.CreateInstance(ctx, n); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	begin := func() (*sql.Conn, *sql.Tx, int) {
		t.Helper()
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		if err := c.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		tx, err := c.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c, tx, pid
	}
	// exec runs a statement; its channel is closed when it has ended.
	exec := func(tx *sql.Tx, q string, args ...any) (<-chan struct{}, *error) {
		done, err := make(chan struct{}), new(error)
		go func() { _, *err = tx.ExecContext(ctx, q, args...); close(done) }()
		return done, err
	}
	// settled waits until the statement ended or waits for a lock.
	settled := func(pid int, done <-chan struct{}) {
		t.Helper()
		for {
			select {
			case <-done:
				return
			default:
			}
			var waiting bool
			if err := db.QueryRowContext(ctx, `SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting {
				return
			}
			time.Sleep(time.Millisecond) // polling for a state, not timing
		}
	}
	ca, a, pidA := begin()
	defer ca.Close()
	cb, b, pidB := begin()
	defer cb.Close()
	if _, err := a.ExecContext(ctx, `UPDATE identities SET role = 'viewer' WHERE id = $1`, n.Admin.ID); err != nil {
		t.Fatal(err)
	}
	// On failure the transactions are rolled back first, so that the
	// connections can close.
	defer a.Rollback()
	defer b.Rollback()
	bKey, bErr := exec(b, `UPDATE api_keys SET description = 'b' WHERE id = $1`, n.Key.ID)
	settled(pidB, bKey)
	aKey, aErr := exec(a, `UPDATE api_keys SET description = 'a' WHERE id = $1`, n.Key.ID)
	settled(pidA, aKey)
	if <-bKey; *bErr != nil {
		t.Fatalf("B's key update: %v", *bErr)
	}
	if err := b.Commit(); err != nil {
		t.Fatalf("B's commit: %v", err)
	}
	if <-aKey; *aErr != nil {
		t.Fatalf("A's key update: %v", *aErr)
	}
	if err := a.Commit(); err != nil {
		t.Fatalf("A's commit: %v", err)
	}
}
