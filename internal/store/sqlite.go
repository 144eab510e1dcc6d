package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteStore is the embedded default: one file, WAL mode, synchronous FULL
// so an acknowledged write survives a crash of the process or the machine.
type sqliteStore struct {
	*sqlStore
	changes broadcaster  // signalled by this process's writes to runtimes (changes.go)
	version *dataVersion // the grant cache's barrier (grantcache.go)
}

var _ Store = (*sqliteStore)(nil)

func openSQLite(ctx context.Context, path string) (*sqliteStore, error) {
	// _txlock=immediate takes the write lock at BEGIN, so two writers queue
	// on busy_timeout instead of failing with SQLITE_BUSY at commit. The
	// pragmas run in order on every new connection: busy_timeout comes
	// first, so that switching a new file to WAL, which needs the lock a
	// second process starting at the same moment may hold, waits for it.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)&_txlock=immediate"
	// Create the file ourselves so it is private whatever the umask; SQLite
	// gives its -wal and -shm files the same mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("unable to create SQLite database %s: %w", path, err)
	} else {
		f.Close()
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("unable to open SQLite database %s: %w", path, err)
	}
	files, err := newBlobFiles(path)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &sqliteStore{sqlStore: &sqlStore{db: db, location: path, d: sqliteDialect(), files: files}}
	s.version = &dataVersion{db: db, grants: &s.grants}
	s.grantsFresh = (&barrier{sync: s.version.sync, fast: s.version.unchanged}).wait
	// Switching a new file to WAL needs a lock that SQLite does not wait
	// for through busy_timeout when another process (or store) is opening
	// the same file at that moment: it answers SQLITE_BUSY at once. The
	// first connection is tried again for a while before giving up.
	for attempt := 1; ; attempt++ {
		err := db.PingContext(ctx)
		if err == nil {
			break
		}
		if !sqliteIsBusy(err) || attempt == 50 || ctx.Err() != nil {
			db.Close()
			return nil, fmt.Errorf("unable to open SQLite database %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.openFiles(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func sqliteDialect() dialect {
	return dialect{
		name:   "sqlite",
		rebind: func(q string) string { return dollarParam.ReplaceAllString(q, "?$1") },
		ddl: func(q string) string {
			if strings.HasPrefix(q, postgresOnly) {
				return "SELECT 1" // applied as a no-op, so both stores count the same migrations
			}
			return q
		},
		isUnique:       sqliteIsUnique,
		lockMigrations: func(context.Context, *sql.Conn) (func(), error) { return func() {}, nil },
	}
}

func sqliteIsBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == 5 // SQLITE_BUSY and its extended codes
}

func sqliteIsUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code()
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// Close closes the grant barrier's connection, then the pool.
func (s *sqliteStore) Close() error {
	s.version.close()
	return s.sqlStore.Close()
}

// dataVersion is the SQLite grant barrier: PRAGMA data_version, on a
// connection that never writes, changes whenever any other connection
// (this process's pool, or another process) has committed to the file
// since it was last asked (https://sqlite.org/pragma.html#pragma_data_version).
// A commit that is not visible yet does not change it, and neither can it
// have been seen by a read: the next barrier catches it. It runs on every
// authenticated request, so it talks to the driver directly: database/sql's
// per-query bookkeeping cost as much as the grant query it replaces.
//
// A new data_version is then checked against the grant tables' version
// (migration 0023), read on the same connection: under token load nearly
// every commit is an audit batch, which changes nothing an answer depends
// on, and forgetting at each of them left the caches all but empty.
//
// Before either, it reads the WAL index's header (walindex.go): as it was
// before the last run, nothing was committed since, and neither query is
// needed — the barrier's fast path (unchanged) asks nothing else.
type dataVersion struct {
	db     *sql.DB
	grants *grantCache

	mu      sync.Mutex
	closed  bool
	conn    *sql.Conn
	stmt    driver.Stmt // PRAGMA data_version, prepared on conn
	grantsQ driver.Stmt // the grant tables' and runtimes' versions, prepared on conn
	dest    []driver.Value
	last    int64
	known   bool
	lastG   int64 // the grant tables' version at the last invalidation
	knownG  bool
	mapped  bool  // conn has tried to map the WAL index
	queries int64 // runs of PRAGMA data_version (for tests)

	// The WAL index (walindex.go), mapped while conn is open, and its
	// header as read before the last run that read the versions; walMu
	// keeps unchanged's reads apart from the unmapping.
	walMu  sync.RWMutex
	wal    *walIndex
	seen   walHeader
	seenOK bool
}

// unchanged reports, without a query, that nothing was committed since
// the last run of sync read the versions: the WAL index's header is as it
// was before that run. Every commit finished before the call rewrote the
// header, so when unchanged says so, what that run forgot or kept holds
// for the caller as a run begun now would (the barrier's guarantee).
func (v *dataVersion) unchanged() bool {
	v.walMu.RLock()
	defer v.walMu.RUnlock()
	if v.wal == nil || !v.seenOK {
		return false
	}
	h, ok := v.wal.header()
	return ok && h == v.seen
}

// see records h, read before a run that then read the versions (v.mu
// held), as what unchanged compares with.
func (v *dataVersion) see(h walHeader, ok bool) {
	v.walMu.Lock()
	defer v.walMu.Unlock()
	v.seen, v.seenOK = h, ok && v.wal != nil
}

// mapWAL maps the WAL index once conn has read (v.mu held). Without it
// (not WAL mode, not Linux, any error) every run asks data_version.
func (v *dataVersion) mapWAL(ctx context.Context) {
	v.mapped = true
	var file, mode string
	err := v.conn.QueryRowContext(ctx, `SELECT (SELECT file FROM pragma_database_list WHERE name = 'main'), (SELECT journal_mode FROM pragma_journal_mode)`).Scan(&file, &mode)
	if err != nil || file == "" || mode != "wal" {
		return
	}
	w, err := mapWALIndex(file)
	if err != nil {
		return
	}
	v.walMu.Lock()
	defer v.walMu.Unlock()
	v.wal, v.seenOK = w, false
}

// sync forgets the remembered grant states when anything was committed
// since the last call; false when it cannot tell.
func (v *dataVersion) sync(ctx context.Context) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return false
	}
	if v.conn == nil {
		c, err := v.db.Conn(ctx)
		if err != nil {
			return false
		}
		err = c.Raw(func(dc any) error {
			p, ok := dc.(driver.ConnPrepareContext)
			if !ok {
				return errors.New("store: the SQLite driver does not prepare with a context")
			}
			st, err := p.PrepareContext(ctx, `PRAGMA data_version`)
			if err != nil {
				return err
			}
			v.stmt = st
			if v.grantsQ, err = p.PrepareContext(ctx, versionsQuery); err != nil {
				st.Close()
				v.stmt = nil
			}
			return err
		})
		if err != nil {
			c.Close()
			return false
		}
		v.conn, v.known, v.knownG, v.dest = c, false, false, make([]driver.Value, 1)
	}
	var h walHeader
	hok := false
	if v.wal != nil {
		if h, hok = v.wal.header(); hok && v.seenOK && h == v.seen {
			return true // nothing committed since the last run
		}
	}
	n, err := v.query(v.stmt)
	if err != nil {
		v.closeConn()
		return false
	}
	v.queries++
	if !v.mapped {
		v.mapWAL(ctx)
	}
	if v.known && n == v.last {
		v.see(h, hok)
		return true // nothing committed since
	}
	// Read after data_version, in a read transaction of its own: it sees
	// every commit that changed data_version, and more.
	g, err := v.query(v.grantsQ)
	if err != nil {
		v.closeConn()
		return false
	}
	if !v.knownG || g != v.lastG {
		v.grants.invalidate()
		v.lastG, v.knownG = g, true
	}
	v.last, v.known = n, true
	v.see(h, hok)
	return true
}

// query reads the one integer st answers, on v.conn (v.mu held).
func (v *dataVersion) query(st driver.Stmt) (int64, error) {
	var n int64
	err := v.conn.Raw(func(any) error {
		q, ok := st.(driver.StmtQueryContext)
		if !ok {
			return errors.New("store: the SQLite driver does not query with a context")
		}
		// Background: neither statement can wait (a read in WAL mode
		// takes no lock a writer holds); a cancellable context would cost
		// a goroutine per call.
		rows, err := q.QueryContext(context.Background(), nil)
		if err != nil {
			return err
		}
		defer rows.Close()
		if err := rows.Next(v.dest); err != nil {
			return err
		}
		var ok2 bool
		n, ok2 = v.dest[0].(int64)
		if !ok2 {
			return fmt.Errorf("store: the grant barrier read %T, not an integer", v.dest[0])
		}
		return nil
	})
	return n, err
}

func (v *dataVersion) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	v.closeConn()
}

func (v *dataVersion) closeConn() {
	v.walMu.Lock()
	if v.wal != nil {
		v.wal.unmap()
	}
	v.wal, v.seenOK = nil, false
	v.walMu.Unlock()
	v.mapped = false
	if v.conn != nil {
		_ = v.conn.Raw(func(any) error {
			if v.grantsQ != nil {
				v.grantsQ.Close()
			}
			return v.stmt.Close()
		})
		v.conn.Close()
		v.conn, v.stmt, v.grantsQ = nil, nil, nil
	}
}
