package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresStore is the scale-out store: several control-plane processes
// share one database.
type postgresStore struct {
	*sqlStore
	holder string // this store's name in leader_leases

	changes    broadcaster // signalled by the NOTIFY listener (changes.go)
	versions   *pgVersions // the grant cache's barrier (grantcache.go)
	listenOnce sync.Once
	stopListen context.CancelFunc
}

// Close stops the change listener, then closes the pool.
func (s *postgresStore) Close() error {
	s.listenOnce.Do(func() {}) // no listener starts after this; one started is seen
	if s.stopListen != nil {
		s.stopListen()
	}
	return s.sqlStore.Close()
}

var _ Store = (*postgresStore)(nil)

// pgPoolSize is how many connections one control plane opens at most.
// The token exchange holds one for each of its statements only (the audit
// is written by one pipeline, in batches), so a few more than the cores
// keep requests from queuing for one; three replicas stay well under
// PostgreSQL's default max_connections of 100.
const pgPoolSize = 20

// migrationLockID is the pg_advisory_lock key that serialises migrations
// when several control planes start at once ("sluice" in ASCII).
const migrationLockID = 0x736c75696365

func openPostgres(ctx context.Context, dsn string) (*postgresStore, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("the PostgreSQL connection string %s is not valid: %w", redactDSN(dsn), err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	db := stdlib.OpenDB(*cfg)
	// As many idle connections are kept as may be open: with fewer, a
	// burst above the idle count closed connections as it ended and the
	// next one opened them again — a new PostgreSQL backend process, its
	// authentication and every hot statement prepared again, each time.
	db.SetMaxOpenConns(pgPoolSize)
	db.SetMaxIdleConns(pgPoolSize)
	s := &postgresStore{sqlStore: &sqlStore{db: db, location: "postgres://" + where, maxIdle: pgPoolSize, d: dialect{
		name:   "postgres",
		rebind: func(q string) string { return q },
		ddl: func(q string) string {
			if strings.HasPrefix(q, sqliteOnly) {
				return "SELECT 1" // as SQLite does with postgresOnly
			}
			return strings.ReplaceAll(q, " BLOB", " BYTEA")
		},
		isUnique:       pgIsUnique,
		lockMigrations: pgLockMigrations,
		planned:        []any{pgx.QueryExecModeExec},
	}}, holder: newLeaseHolder()}
	s.versions = &pgVersions{db: db, grants: &s.grants}
	s.grantsFresh = (&barrier{sync: s.versions.sync}).wait
	pingCtx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot reach PostgreSQL at %s: %s; check that it runs and that --store/SLUICE_STORE is right", where, pgReason(err))
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// pgReason reduces a connection error to its cause, without the
// connection string.
func pgReason(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err.Error()
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

func pgLockMigrations(ctx context.Context, c *sql.Conn) (func(), error) {
	if _, err := c.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockID); err != nil {
		return nil, err
	}
	return func() {
		// A fresh context: the lock must be released even if ctx is done.
		_, _ = c.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLockID)
	}, nil
}

func pgIsUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// barrierTimeout is how long a grant barrier waits for the versions
// before the request reads the database instead.
const barrierTimeout = 2 * time.Second

// pgVersions is the PostgreSQL grant barrier: the grant tables' and the
// runtimes' versions (migration 0025), read in one statement. Under READ
// COMMITTED the statement's snapshot holds every transaction that
// committed before it began — on this replica or any other — and each
// such write bumped a version in its own transaction, so versions equal
// to those at the last invalidation mean nothing remembered since may
// have gone stale. The barrier type runs one sync at a time.
type pgVersions struct {
	db     *sql.DB
	grants *grantCache

	last  int64 // the versions' sum at the last invalidation
	known bool
}

func (v *pgVersions) sync(ctx context.Context) bool {
	// The barrier's goroutine runs it for requests that wait on it, on a
	// context nobody cancels: a database that stops answering must not
	// hold them all.
	ctx, cancel := context.WithTimeout(ctx, barrierTimeout)
	defer cancel()
	var n int64
	if err := v.db.QueryRowContext(ctx, versionsQuery).Scan(&n); err != nil {
		return false
	}
	if !v.known || n != v.last {
		v.grants.invalidate()
		v.last, v.known = n, true
	}
	return true
}
