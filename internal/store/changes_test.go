package store_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// A write made through one store reaches another store on the same
// PostgreSQL schema as a change signal (NOTIFY from migration 0020's
// triggers), and a listener whose connection the database ended listens
// again and signals once for the resync.
func TestChangesReachEveryReplica(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	ctx := context.Background()
	a, err := store.Open(ctx, dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	u, _ := url.Parse(dsn)
	q := u.Query()
	app := "sluice-changes-" + q.Get("search_path")
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	b, err := store.Open(ctx, u.String(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	changes, stop := b.SubscribeChanges()
	defer stop()
	signalled := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(30 * time.Second):
			t.Fatalf("no change signal: %s", what)
		}
	}
	signalled("the listener's first resync")

	at := clocktest.Epoch()
	if err := a.CreateInstance(ctx, newInstance("inst1", at)); err != nil {
		t.Fatal(err)
	}
	signalled("an instance created through the other store")

	// The database ends the listening connection (a restart does the same).
	admin, err := sql.Open("pgx", os.Getenv(storetest.EnvPostgres))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var ended int
	if err := admin.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND query = 'LISTEN sluice_changes'`, app).Scan(&ended); err != nil || ended != 1 {
		t.Fatalf("terminate the listener: %d, %v", ended, err)
	}
	signalled("the resync after the listener's connection ended")
	if err := a.CreateInstance(ctx, newInstance("inst2", at)); err != nil {
		t.Fatal(err)
	}
	signalled("a write after the listener came back")
}

// On SQLite, the process that owns the file signals its own writes to
// integration runtimes: a spec, a status that changed (not one written
// again unchanged, which every reconcile pass does) and a delete.
func TestSQLiteSignalsRuntimeWrites(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, storetest.DSN(t, "sqlite"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	changes, stop := s.SubscribeChanges()
	defer stop()
	signalled := func() bool {
		select {
		case <-changes:
			return true
		default:
			return false
		}
	}
	at := clocktest.Epoch()
	if err := s.CreateInstance(ctx, newInstance("inst1", at)); err != nil {
		t.Fatal(err)
	}
	signalled() // whatever creating an instance does
	if _, _, err := s.PutRuntime(ctx, store.Runtime{InstanceID: "inst1", Name: "rt", UID: "ir-1", Spec: "{}", FetchTokenHash: "h",
		CreatedAt: at, CreatedBy: "test", UpdatedAt: at, UpdatedBy: "test"}, nil); err != nil {
		t.Fatal(err)
	}
	if !signalled() {
		t.Error("no signal after a runtime was created")
	}
	if err := s.SetRuntimeStatus(ctx, "inst1", "rt", `{"phase":"Ready"}`); err != nil {
		t.Fatal(err)
	}
	if !signalled() {
		t.Error("no signal after a runtime's status changed")
	}
	if err := s.SetRuntimeStatus(ctx, "inst1", "rt", `{"phase":"Ready"}`); err != nil {
		t.Fatal(err)
	}
	if signalled() {
		t.Error("a signal after the same status was written again")
	}
	if err := s.DeleteRuntime(ctx, "inst1", "rt"); err != nil {
		t.Fatal(err)
	}
	if !signalled() {
		t.Error("no signal after a runtime was deleted")
	}
}

// Recording last use (once a second per replica while tokens are
// exchanged) is no change signal, while locking a key still is: a
// listener sees, in commit order, nothing from RecordUse before a marker
// notified after it, and then the lock's signal.
func TestLastUseIsNoChangeSignal(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	ctx := context.Background()
	s, err := store.Open(ctx, dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := clocktest.Epoch()
	n := newInstance("inst1", at)
	if err := s.CreateInstance(ctx, n); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN sluice_changes"); err != nil {
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		nt, err := conn.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("waiting for a notification: %v", err)
		}
		return nt.Payload
	}
	if err := s.RecordUse(ctx, map[string]time.Time{n.Key.ID: at.Add(time.Minute)}, map[string]time.Time{n.Credential.ClientID: at.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_notify('sluice_changes', 'marker')"); err != nil {
		t.Fatal(err)
	}
	if p := next(); p != "marker" {
		t.Fatalf("recording last use notified %q", p)
	}
	if err := s.SetAPIKeyLocked(ctx, "inst1", n.Key.ID, true); err != nil {
		t.Fatal(err)
	}
	if p := next(); p == "marker" || p == "" {
		t.Fatalf("locking a key notified %q; want its schema", p)
	}
	if k, err := s.GetAPIKey(ctx, "inst1", n.Key.ID); err != nil || !k.LastUsedAt.Equal(at.Add(time.Minute)) {
		t.Fatalf("the last use was not recorded: %+v, %v", k, err)
	}
}
