package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/secret"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded, numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations in order. Files are named
// NNNN_description.sql and written in the SQL both databases accept; the
// dialect adapts the few type names that differ.
// postgresOnly opens a migration that only PostgreSQL applies (triggers,
// functions); SQLite records it as applied and runs nothing.
const postgresOnly = "-- postgres only"

// sqliteOnly opens a migration that only SQLite applies (the grant
// tables' version, whose part PostgreSQL's NOTIFY triggers play).
const sqliteOnly = "-- sqlite only"

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("store: migration file %s is not named NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("store: migrations must be numbered 1, 2, 3…; %s is out of sequence", m.name)
		}
	}
	return out, nil
}

// dialect holds what differs between SQLite and PostgreSQL.
type dialect struct {
	name string
	// rebind turns the $1-style placeholders every query is written with
	// into the dialect's own.
	rebind func(string) string
	// ddl adapts migration text (type names).
	ddl func(string) string
	// isUnique reports a unique-constraint violation.
	isUnique func(error) bool
	// lockMigrations serialises migration across processes; it returns the
	// function that releases the lock.
	lockMigrations func(ctx context.Context, c *sql.Conn) (func(), error)
	// planned, when set, are the arguments put before a query's own so
	// the server plans it for these values rather than reusing a generic
	// plan (see queryPlanned).
	planned []any
	// copyChunks, when set, stores BAR content into blob_chunks by a
	// bulk load on the transaction's driver connection (PostgreSQL's
	// COPY), instead of an INSERT per chunk: see writeChunks.
	// contentErr is r's own problem (unreadable, not size bytes), which
	// the server sees only as a failed COPY.
	copyChunks func(ctx context.Context, driverConn any, sha string, size int64, r io.Reader) (contentErr, err error)
}

var dollarParam = regexp.MustCompile(`\$(\d+)`)

// sqlStore is the SQL both backends share; sqliteStore and postgresStore
// wrap it with what differs (opening, locking, error codes).
type sqlStore struct {
	db         *sql.DB
	d          dialect
	location   string
	migrations []migration
	queries    queryCache
	stmts      sync.Map // query text -> *sql.Stmt
	txConns    sync.Map // *sql.Tx -> the *sql.Conn it runs on (dialects with copyChunks)
	observe    atomic.Pointer[QueryObserver]
	maxIdle    int // idle connections kept; 0: database/sql's default
	// files, when set (SQLite), holds BAR content instead of blob_chunks.
	files *blobFiles

	// grants remembers GrantState answers; grantsFresh waits until they
	// reflect every change committed before it was called, or reports
	// false (then the database is read). See grantcache.go.
	grants      grantCache
	grantsFresh func(ctx context.Context) bool
}

// discardIdle closes the pool's idle connections. After the database
// dropped connections (a restart), the idle ones are dead too, and a
// retried read must not take another of them.
func (s *sqlStore) discardIdle() {
	if s.maxIdle > 0 {
		s.db.SetMaxIdleConns(0)
		s.db.SetMaxIdleConns(s.maxIdle)
	}
}

// QueryObserver is told how long each statement took to answer (its
// first row for a query; rows read later are the caller's time), by its
// kind: select, insert, update, delete, other, and tx for a whole
// transaction up to its commit.
type QueryObserver func(kind string, seconds float64)

// ObserveQueries makes st tell fn the duration of every statement, for
// metrics; a store that cannot reports false.
func ObserveQueries(st Store, fn QueryObserver) bool {
	o, ok := st.(interface{ observeQueries(QueryObserver) })
	if ok {
		o.observeQueries(fn)
	}
	return ok
}

func (s *sqlStore) observeQueries(fn QueryObserver) { s.observe.Store(&fn) }

// timed reports the statement's duration to the observer, if any.
func (s *sqlStore) timed(query string, sw clock.Stopwatch) {
	if fn := s.observe.Load(); fn != nil {
		(*fn)(queryKind(query), sw.Seconds())
	}
}

func (s *sqlStore) timedTx(sw clock.Stopwatch) {
	if fn := s.observe.Load(); fn != nil {
		(*fn)("tx", sw.Seconds())
	}
}

// queryKind is the statement's first keyword, from a fixed set.
func queryKind(query string) string {
	q := strings.TrimLeft(query, " \t\r\n(")
	if i := strings.IndexAny(q, " \t\r\n"); i > 0 {
		q = q[:i]
	}
	switch k := strings.ToLower(q); k {
	case "select", "insert", "update", "delete":
		return k
	case "with":
		return "select"
	}
	return "other"
}

func (s *sqlStore) Kind() string     { return s.d.name }
func (s *sqlStore) Location() string { return s.location }
func (s *sqlStore) Close() error {
	s.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	return s.db.Close()
}

// q returns query text rebound for the dialect, cached.
func (s *sqlStore) q(query string) string { return s.queries.get(query, s.d.rebind) }

// stmt returns the query prepared once for the whole pool: the hot paths
// (token exchange, the per-request grant check) then skip parsing SQL on
// every call. database/sql prepares it again on each connection as needed.
func (s *sqlStore) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if v, ok := s.stmts.Load(query); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, s.q(query))
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// txKey marks a context whose store calls join a transaction of this
// store (see Audited).
type txKey struct{ s *sqlStore }

// txOf returns the transaction ctx carries for this store, if any.
func (s *sqlStore) txOf(ctx context.Context) *sql.Tx {
	tx, _ := ctx.Value(txKey{s}).(*sql.Tx)
	return tx
}

func (s *sqlStore) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer s.timed(query, clock.StartStopwatch())
	if tx := s.txOf(ctx); tx != nil {
		return tx.ExecContext(ctx, s.q(query), args...)
	}
	st, err := s.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (s *sqlStore) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	defer s.timed(query, clock.StartStopwatch())
	if tx := s.txOf(ctx); tx != nil {
		return tx.QueryRowContext(ctx, s.q(query), args...)
	}
	var row *sql.Row
	for try := 0; try <= readRetries; try++ {
		st, err := s.stmt(ctx, query)
		if err != nil {
			// A statement that does not prepare fails the same way as a query.
			row = s.db.QueryRowContext(ctx, s.q(query), args...)
		} else {
			row = st.QueryRowContext(ctx, args...)
		}
		if !retryableRead(ctx, query, row.Err()) {
			break
		}
		s.discardIdle()
	}
	return row
}

func (s *sqlStore) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	defer s.timed(query, clock.StartStopwatch())
	if tx := s.txOf(ctx); tx != nil {
		return tx.QueryContext(ctx, s.q(query), args...)
	}
	for try := 0; ; try++ {
		st, err := s.stmt(ctx, query)
		var rows *sql.Rows
		if err == nil {
			rows, err = st.QueryContext(ctx, args...)
		}
		if try == readRetries || !retryableRead(ctx, query, err) {
			return rows, err
		}
		s.discardIdle()
	}
}

// queryPlanned runs a query whose best plan depends on its values, never
// through a cached prepared statement. PostgreSQL plans a prepared
// statement for its values five times, then may settle on one generic
// plan for all: for the audit, reading the time index and filtering on the
// instance is as good a generic plan as any, and scans everything when the
// instance asked for holds few of the events. An unnamed statement is
// planned for the values it is sent with, each time (a fraction of a
// millisecond). SQLite's plans do not depend on the values bound.
func (s *sqlStore) queryPlanned(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s.txOf(ctx) != nil || s.d.planned == nil {
		return s.query(ctx, query, args...)
	}
	defer s.timed(query, clock.StartStopwatch())
	args = append(slices.Clip(s.d.planned), args...)
	for try := 0; ; try++ {
		rows, err := s.db.QueryContext(ctx, s.q(query), args...)
		if try == readRetries || !retryableRead(ctx, query, err) {
			return rows, err
		}
		s.discardIdle()
	}
}

// mapErr turns driver errors into the package's sentinel errors.
func (s *sqlStore) mapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case s.d.isUnique(err):
		return fmt.Errorf("%w: %s", ErrConflict, op)
	case Unavailable(err):
		return fmt.Errorf("%w: unable to %s: %w", ErrUnavailable, op, err)
	default:
		return fmt.Errorf("store: unable to %s: %w", op, err)
	}
}

// inTx runs fn in a transaction, committing only if fn succeeds.
func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if tx := s.txOf(ctx); tx != nil {
		return fn(tx) // part of the caller's transaction, which commits
	}
	defer s.timedTx(clock.StartStopwatch())
	var tx *sql.Tx
	var err error
	if s.d.copyChunks != nil {
		// The connection is reserved, so that what database/sql does not
		// offer (COPY) can run on it inside the transaction (connOf).
		conn, cerr := s.db.Conn(ctx)
		if cerr != nil {
			return fmt.Errorf("store: unable to begin a transaction: %w", cerr)
		}
		defer conn.Close()
		if tx, err = conn.BeginTx(ctx, nil); err == nil {
			s.txConns.Store(tx, conn)
			defer s.txConns.Delete(tx)
		}
	} else {
		tx, err = s.db.BeginTx(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("store: unable to begin a transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: unable to commit: %w", err)
	}
	return nil
}

// connOf returns the connection tx runs on, when inTx reserved one.
func (s *sqlStore) connOf(tx *sql.Tx) *sql.Conn {
	c, _ := s.txConns.Load(tx)
	conn, _ := c.(*sql.Conn)
	return conn
}

// putTx runs a create-or-replace transaction, and once more when it lost a
// race to create the same name: two PUTs of one new name at once then give
// one creation and one replacement, never a conflict. fn must reset what it
// reports at its start, as it may run twice.
func (s *sqlStore) putTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	err := s.inTx(ctx, fn)
	if errors.Is(err, ErrConflict) {
		err = s.inTx(ctx, fn)
	}
	return err
}

// migrate applies every pending migration. The dialect's lock keeps two
// processes starting together from applying the same migration twice; the
// applied set is read again under the lock for the same reason.
func (s *sqlStore) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	s.migrations = ms
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: unable to reserve a connection: %w", err)
	}
	defer conn.Close()
	unlock, err := s.d.lockMigrations(ctx, conn)
	if err != nil {
		return fmt.Errorf("store: unable to take the migration lock: %w", err)
	}
	defer unlock()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: unable to create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("store: unable to read the schema version: %w", err)
	}
	if current > len(ms) {
		return fmt.Errorf("store schema is at version %d but this sluice binary knows only %d: run a newer sluice", current, len(ms))
	}
	for _, m := range ms[current:] {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: unable to begin migration %s: %w", m.name, err)
		}
		// Read the version again inside the transaction: on SQLite the
		// transaction itself is the lock between processes.
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("store: unable to read the schema version: %w", err)
		}
		if current >= m.version {
			_ = tx.Rollback()
			continue
		}
		if _, err := tx.ExecContext(ctx, s.d.ddl(m.sql)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("store: migration %s failed: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`),
			m.version, m.name, time.Now().UnixMilli()); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("store: unable to record migration %s: %w", m.name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: unable to commit migration %s: %w", m.name, err)
		}
	}
	return nil
}

func (s *sqlStore) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, s.mapErr("read the schema version", err)
}

func (s *sqlStore) Ready(ctx context.Context) error {
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v != len(s.migrations) {
		return fmt.Errorf("store: schema at version %d, expected %d", v, len(s.migrations))
	}
	return nil
}

// ---- data keys (secret.KeyStore) ----

func (s *sqlStore) ListDataKeys(ctx context.Context) ([]secret.WrappedKey, error) {
	rows, err := s.query(ctx, `SELECT id, master_fp, wrapped, created_at FROM data_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, s.mapErr("list data keys", err)
	}
	defer rows.Close()
	var out []secret.WrappedKey
	for rows.Next() {
		var k secret.WrappedKey
		var at int64
		if err := rows.Scan(&k.ID, &k.MasterFP, &k.Wrapped, &at); err != nil {
			return nil, s.mapErr("read a data key", err)
		}
		k.CreatedAt = time.UnixMilli(at).UTC()
		out = append(out, k)
	}
	return out, s.mapErr("list data keys", rows.Err())
}

func (s *sqlStore) InsertDataKey(ctx context.Context, k secret.WrappedKey) error {
	_, err := s.exec(ctx, `INSERT INTO data_keys (id, master_fp, wrapped, created_at) VALUES ($1, $2, $3, $4)`,
		k.ID, k.MasterFP, k.Wrapped, k.CreatedAt.UnixMilli())
	return s.mapErr("insert a data key", err)
}

func (s *sqlStore) ReplaceDataKeys(ctx context.Context, keys []secret.WrappedKey) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			res, err := tx.ExecContext(ctx, s.q(`UPDATE data_keys SET master_fp = $1, wrapped = $2 WHERE id = $3`), k.MasterFP, k.Wrapped, k.ID)
			if err != nil {
				return s.mapErr("re-wrap a data key", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("store: data key %s vanished during re-wrapping", k.ID)
			}
		}
		return nil
	})
}
