package store_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"runtime"
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
	eachReaderWriter(t, func(t *testing.T, kind string, reader, writer store.Store, reads *atomic.Int64) {
		ctx := context.Background()
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

// ExchangeCredentials is remembered as GrantState is: a repeated exchange
// reads nothing, audit events and last-used times (written under every
// token load) do not make it forget, and every change to what the
// exchange checks — through this store or another on the same database —
// is in the very next answer.
func TestExchangeCredentialsRemembersButNeverServesStale(t *testing.T) {
	eachReaderWriter(t, func(t *testing.T, kind string, reader, writer store.Store, reads *atomic.Int64) {
		ctx := context.Background()
		listening, stop := reader.SubscribeChanges()
		defer stop()
		at := clocktest.Epoch()
		insts := map[string]store.NewInstance{}
		for _, id := range []string{"inst1", "inst2", "inst3", "inst4"} {
			insts[id] = newInstance(id, at)
			if err := writer.CreateInstance(ctx, insts[id]); err != nil {
				t.Fatal(err)
			}
		}
		exchange := func(id string) store.ExchangeCredentials {
			t.Helper()
			n := insts[id]
			ec, err := reader.ExchangeCredentials(ctx, n.Credential.ClientID, n.Key.KeyHash)
			if err != nil {
				t.Fatal(err)
			}
			return ec
		}
		if ec := exchange("inst1"); !ec.ClientFound || !ec.KeyFound || ec.Key.Locked || ec.Key.OwnerRole != "admin" {
			t.Fatalf("fresh exchange = %+v", ec)
		}
		if kind == "postgres" {
			<-listening // nothing is remembered before
		}
		remembered := func(what, id string) {
			t.Helper()
			exchange(id)
			before := reads.Load()
			exchange(id)
			if reads.Load() != before {
				t.Fatalf("%s: a repeated ExchangeCredentials read the database", what)
			}
		}
		remembered("at first", "inst1")

		// What every token load writes changes nothing checked.
		if err := writer.InsertAuditEvents(ctx, []store.AuditEvent{{ID: "ev1", At: at, InstanceID: "inst1", Actor: "x", Action: "token.issue", Object: "o", Outcome: "success"}}); err != nil {
			t.Fatal(err)
		}
		n1 := insts["inst1"]
		if err := writer.RecordUse(ctx, map[string]time.Time{n1.Key.ID: at}, map[string]time.Time{n1.Credential.ClientID: at}); err != nil {
			t.Fatal(err)
		}
		before := reads.Load()
		exchange("inst1")
		if kind == "sqlite" && reads.Load() != before {
			// PostgreSQL's listener forgets at any notification,
			// and its notifications are asynchronous: only
			// SQLite's barrier can be held to this.
			t.Fatal("an audit event or a last-used time made ExchangeCredentials read the database")
		}

		steps := []struct {
			what, inst string
			change     func() error
			check      func(ec store.ExchangeCredentials) bool
		}{
			{"key locked", "inst1", func() error { return writer.SetAPIKeyLocked(ctx, "inst1", n1.Key.ID, true) },
				func(ec store.ExchangeCredentials) bool { return ec.Key.Locked }},
			{"key unlocked (a new epoch)", "inst1", func() error { return writer.SetAPIKeyLocked(ctx, "inst1", n1.Key.ID, false) },
				func(ec store.ExchangeCredentials) bool { return !ec.Key.Locked && ec.Key.TokenEpoch != 0 }},
			{"owner demoted", "inst1", func() error {
				id := n1.Admin
				id.Role = "viewer"
				return writer.UpdateIdentity(ctx, id)
			}, func(ec store.ExchangeCredentials) bool { return ec.Key.OwnerRole == "viewer" }},
			{"key deleted", "inst1", func() error { return writer.DeleteAPIKey(ctx, "inst1", n1.Key.ID) },
				func(ec store.ExchangeCredentials) bool { return !ec.KeyFound && ec.ClientFound }},
			{"credential deleted", "inst2", func() error { return writer.DeleteClientCredential(ctx, "inst2", insts["inst2"].Credential.Name) },
				func(ec store.ExchangeCredentials) bool { return !ec.ClientFound && ec.KeyFound }},
			{"owner deleted (its keys with it)", "inst3", func() error {
				return writer.DeleteIdentity(ctx, "inst3", store.KindUser, insts["inst3"].Admin.Name)
			}, func(ec store.ExchangeCredentials) bool { return !ec.KeyFound }},
			{"instance deleted", "inst4", func() error { _, err := writer.DeleteInstance(ctx, "inst4"); return err },
				func(ec store.ExchangeCredentials) bool { return !ec.KeyFound && !ec.ClientFound }},
		}
		for _, st := range steps {
			remembered(st.what, st.inst)
			if err := st.change(); err != nil {
				t.Fatalf("%s: %v", st.what, err)
			}
			if ec := exchange(st.inst); !st.check(ec) {
				t.Fatalf("%s: the next ExchangeCredentials = %+v", st.what, ec)
			}
		}
	})
}

// eachReaderWriter runs fn on each kind of store with a reader whose
// selects are counted and a writer: the reader itself, or another store
// on the same database (another replica on PostgreSQL; another process,
// as far as SQLite can tell, on SQLite).
func eachReaderWriter(t *testing.T, fn func(t *testing.T, kind string, reader, writer store.Store, reads *atomic.Int64)) {
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
				t.Cleanup(func() { reader.Close() })
				writer := reader
				if other {
					if writer, err = store.Open(ctx, dsn, dir); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { writer.Close() })
				}
				var reads atomic.Int64
				store.ObserveQueries(reader, func(kind string, _ float64) {
					if kind == "select" {
						reads.Add(1)
					}
				})
				fn(t, kind, reader, writer, &reads)
			})
		}
	}
}

// A revocation committed through another store before requests begin is
// in their answers even when they arrive while a barrier run is in
// flight that began before the commit (its snapshot predates it): they
// wait for the next run, which they share — one read of the versions for
// all of them, and still no stale answer.
func TestBarrierRunBegunBeforeARequestDoesNotAnswerIt(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dsn, dir := storetest.DSN(t, kind), t.TempDir()
			reader, err := store.Open(ctx, dsn, dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { reader.Close() })
			writer, err := store.Open(ctx, dsn, dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { writer.Close() })
			at := clocktest.Epoch()
			n := newInstance("inst1", at)
			if err := writer.CreateInstance(ctx, n); err != nil {
				t.Fatal(err)
			}
			grant := func() store.GrantState {
				g, err := reader.GrantState(ctx, n.Credential.ClientID, n.Key.ID, n.Admin.ID, "jti-1")
				if err != nil {
					t.Error(err)
				}
				return g
			}
			if g := grant(); g.Revoked || !g.KeyExists {
				t.Fatalf("fresh grant = %+v", g)
			}

			// The next run reads the versions, then is held in flight.
			var runs atomic.Int64
			var hold atomic.Bool
			inFlight, release := make(chan struct{}), make(chan struct{})
			waiting := store.GateBarrier(reader, func(sync func(context.Context) bool) func(context.Context) bool {
				return func(ctx context.Context) bool {
					runs.Add(1)
					ok := sync(ctx)
					if hold.CompareAndSwap(true, false) {
						close(inFlight)
						<-release
					}
					return ok
				}
			})
			grant() // remembered
			grant()
			hold.Store(true)
			early := make(chan store.GrantState)
			go func() { early <- grant() }() // began before the revocation
			<-inFlight
			if err := writer.RevokeToken(ctx, "jti-1", at.Add(time.Hour), at); err != nil {
				t.Fatal(err)
			}
			before := runs.Load()
			const requests = 8
			answers := make(chan store.GrantState, requests)
			for range requests {
				go func() { answers <- grant() }()
			}
			for waiting() != requests {
				runtime.Gosched() // until all of them wait on the barrier
			}
			close(release)
			<-early // may say either: it began before the revocation
			for range requests {
				if g := <-answers; !g.Revoked {
					t.Fatalf("a request begun after the revocation was answered %+v", g)
				}
			}
			if got := runs.Load() - before; got != 1 {
				t.Fatalf("%d requests waited for %d barrier runs, want them to share 1", requests, got)
			}
		})
	}
}

// On PostgreSQL the barrier reads the versions on a connection of its
// own, outside the pool. When the server ends that connection (a restart
// or pg_terminate_backend does), no answer is stale — the request reads
// the database — and the next barrier connects again, so answers are
// remembered again; Close ends it with the pool's. Being no connection of
// the pool, it passes while every pooled one is busy.
func TestPostgresBarrierConnectsAgainAndCloses(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	ctx := context.Background()
	u, _ := url.Parse(dsn)
	q := u.Query()
	app := "sluice-barrier-" + q.Get("search_path")
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	reader, err := store.Open(ctx, u.String(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			reader.Close()
		}
	}()
	writer, err := store.Open(ctx, dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	var reads atomic.Int64
	store.ObserveQueries(reader, func(kind string, _ float64) {
		if kind == "select" {
			reads.Add(1)
		}
	})
	admin, err := sql.Open("pgx", os.Getenv(storetest.EnvPostgres))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	barrierPID := func() int {
		t.Helper()
		var pids []int
		rows, err := admin.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query = $2`, app, store.VersionsQuery)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var pid int
			if err := rows.Scan(&pid); err != nil {
				t.Fatal(err)
			}
			pids = append(pids, pid)
		}
		if len(pids) != 1 {
			t.Fatalf("%d connections of the reader run the barrier's statement, want 1", len(pids))
		}
		return pids[0]
	}

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
	remembered := func(what string) {
		t.Helper()
		grant()
		before := reads.Load()
		grant()
		if reads.Load() != before {
			t.Fatalf("%s: a repeated GrantState read the database", what)
		}
	}
	remembered("at first")
	first := barrierPID()

	// Not a connection of the pool: a remembered answer needs none, even
	// while every one of them is busy. (The deadline only ends the test
	// if the barrier waited for the pool.)
	release, err := store.HoldPool(reader)
	if err != nil {
		t.Fatal(err)
	}
	busy, cancel := context.WithTimeout(ctx, 30*time.Second)
	g, err := reader.GrantState(busy, n.Credential.ClientID, n.Key.ID, n.Admin.ID, "jti-1")
	cancel()
	release()
	if err != nil || !g.KeyExists || g.KeyLocked {
		t.Fatalf("with every pooled connection busy: %+v, %v", g, err)
	}

	var ended bool
	if err := admin.QueryRowContext(ctx, `SELECT pg_terminate_backend($1)`, first).Scan(&ended); err != nil || !ended {
		t.Fatalf("terminate the barrier's connection: %v, %v", ended, err)
	}
	if err := writer.SetAPIKeyLocked(ctx, "inst1", n.Key.ID, true); err != nil {
		t.Fatal(err)
	}
	if g := grant(); !g.KeyLocked {
		t.Fatalf("after the barrier's connection ended and the key was locked: %+v", g)
	}
	remembered("after the barrier's connection ended")
	if g := grant(); !g.KeyLocked {
		t.Fatalf("remembered after the barrier connected again: %+v", g)
	}
	if again := barrierPID(); again == first {
		t.Fatalf("the barrier still runs on the ended backend %d", first)
	}

	reader.Close()
	closed = true
	for { // PostgreSQL ends a backend shortly after its client closes
		var open int
		if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}
