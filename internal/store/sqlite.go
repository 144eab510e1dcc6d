package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteStore is the embedded default: one file, WAL mode, synchronous FULL
// so an acknowledged write survives a crash of the process or the machine.
type sqliteStore struct {
	*sqlStore
	changes broadcaster // signalled by this process's writes to runtimes (changes.go)
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
	s := &sqliteStore{sqlStore: &sqlStore{db: db, location: path, d: dialect{
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
	}}}
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
	return s, nil
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
