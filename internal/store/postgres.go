package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
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

// Close stops the change listener, closes the grant barrier's
// connection, then the pool.
func (s *postgresStore) Close() error {
	s.listenOnce.Do(func() {}) // no listener starts after this; one started is seen
	if s.stopListen != nil {
		s.stopListen()
	}
	s.versions.close()
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
		copyChunks:     pgCopyChunks,
	}}, holder: newLeaseHolder()}
	s.versions = &pgVersions{cfg: &cfg.Config, grants: &s.grants}
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
//
// The statement runs on a connection of the barrier's own, outside the
// pool, prepared once, and its timeout is the socket's deadline: a run is
// one Bind/Execute/Sync written and its answer read, none of
// database/sql's pool, driver and row machinery nor a context timer per
// run. Under load a run answers a dozen requests, and through the pool it
// cost each of them more control-plane CPU than SQLite's whole barrier.
type pgVersions struct {
	cfg    *pgconn.Config // the pool's: the same server, user and settings
	grants *grantCache

	mu     sync.Mutex // one run at a time, and Close
	conn   *pgconn.PgConn
	stmt   *pgconn.StatementDescription
	closed bool
	last   int64 // the versions' sum at the last invalidation
	known  bool
}

// binaryResult asks for the versions' sum as an 8-byte integer.
var binaryResult = []int16{pgx.BinaryFormatCode}

func (v *pgVersions) sync(ctx context.Context) bool {
	// A run answers every request that waits on it, so its statement is
	// not ended with the context of the one that runs it (the barrier's
	// goroutine's is nobody's); but a database that stops answering must
	// not hold them all: the socket's deadline ends the run.
	v.mu.Lock()
	defer v.mu.Unlock()
	n, err := v.read(ctx, time.Now().Add(barrierTimeout))
	if err != nil {
		if v.conn != nil {
			// Within the run's deadline; the next run connects again.
			v.conn.Close(context.Background())
			v.conn = nil
		}
		return false
	}
	if !v.known || n != v.last {
		v.grants.invalidate()
		v.last, v.known = n, true
	}
	return true
}

// read runs the versions' statement once, connecting first if need be.
// The caller holds v.mu.
func (v *pgVersions) read(ctx context.Context, deadline time.Time) (int64, error) {
	if v.closed {
		return 0, errors.New("store: closed")
	}
	if v.conn == nil || v.conn.IsClosed() {
		ctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		c, err := pgconn.ConnectConfig(ctx, v.cfg)
		if err != nil {
			return 0, err
		}
		v.conn = c
		if v.stmt, err = c.Prepare(ctx, "sluice_versions", versionsQuery, nil); err != nil {
			return 0, err
		}
	}
	if err := v.conn.Conn().SetDeadline(deadline); err != nil {
		return 0, err
	}
	rr := v.conn.ExecStatement(context.Background(), v.stmt, nil, nil, binaryResult)
	var n int64
	rows := 0
	for rr.NextRow() {
		if vals := rr.Values(); len(vals) == 1 && len(vals[0]) == 8 {
			n = int64(binary.BigEndian.Uint64(vals[0]))
			rows++
		}
	}
	if _, err := rr.Close(); err != nil {
		return 0, err
	}
	if rows != 1 {
		return 0, errors.New("store: the grant barrier read no versions")
	}
	return n, nil
}

// close ends the barrier's connection; no run connects after it.
func (v *pgVersions) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	if v.conn != nil {
		// The last run's deadline may have passed: PostgreSQL is told
		// goodbye (Terminate) within a fresh one.
		_ = v.conn.Conn().SetDeadline(time.Now().Add(time.Second))
		v.conn.Close(context.Background())
		v.conn = nil
	}
}

// pgCopyChunks loads size bytes of r into blob_chunks under sha, a row per
// ChunkSize bytes, with one COPY FROM STDIN in the binary format: pgconn
// reads the rows from chunkRows straight into its send buffer, so the
// content is copied once on its way from r to the socket (a Bind message
// per INSERT copied it twice), and the server stores rows while the next
// ones are read and sent. It runs inside the caller's transaction, on its
// connection: a COPY that fails aborts that transaction, which leaves
// nothing behind.
func pgCopyChunks(ctx context.Context, dc any, sha string, size int64, r io.Reader) (contentErr, err error) {
	c, ok := dc.(*stdlib.Conn)
	if !ok {
		return nil, fmt.Errorf("store: a PostgreSQL connection is a %T", dc)
	}
	rows := newChunkRows(r, sha, size)
	_, err = c.Conn().PgConn().CopyFrom(ctx, rows, `COPY blob_chunks (sha256, seq, data) FROM STDIN (FORMAT binary)`)
	return rows.err, err
}

// chunkRows is an io.Reader of blob_chunks rows (sha256, seq, data) in
// COPY's binary format (PostgreSQL's documentation, "COPY", "Binary
// Format"): the header, a row per ChunkSize bytes of r, the trailer. Each
// row's length is known from size before its bytes are read; content that
// ends early or goes on past size ends the stream with err, which fails
// the COPY.
type chunkRows struct {
	r    io.Reader
	sha  string
	size int64
	sent int64  // bytes of r given so far
	left int64  // bytes of r the current row still takes
	seq  int32  // the next row's
	head []byte // framing to give before any more of r
	end  bool   // the trailer is in head
	err  error
}

// pgCopyHeader is the binary format's signature, flags (none) and header
// extension length (0).
var pgCopyHeader = append([]byte("PGCOPY\n\xff\r\n\x00"), 0, 0, 0, 0, 0, 0, 0, 0)

func newChunkRows(r io.Reader, sha string, size int64) *chunkRows {
	return &chunkRows{r: r, sha: sha, size: size, head: slices.Clone(pgCopyHeader)}
}

func (c *chunkRows) Read(p []byte) (int, error) {
	for {
		switch {
		case c.err != nil:
			return 0, c.err
		case len(c.head) > 0:
			n := copy(p, c.head)
			c.head = c.head[n:]
			return n, nil
		case c.left > 0:
			n, err := c.r.Read(p[:min(int64(len(p)), c.left)])
			c.left -= int64(n)
			c.sent += int64(n)
			switch {
			case errors.Is(err, io.EOF) && c.left > 0:
				c.err = errContentSize(c.sent, c.size)
			case err != nil && !errors.Is(err, io.EOF):
				c.err = errContentRead(err)
			}
			return n, c.err
		case c.end:
			return 0, io.EOF
		case c.sent < c.size:
			c.left = min(ChunkSize, c.size-c.sent)
			h := binary.BigEndian.AppendUint16(c.head[:0], 3) // fields
			h = binary.BigEndian.AppendUint32(h, uint32(len(c.sha)))
			h = append(h, c.sha...)
			h = binary.BigEndian.AppendUint32(h, 4)
			h = binary.BigEndian.AppendUint32(h, uint32(c.seq))
			c.head = binary.BigEndian.AppendUint32(h, uint32(c.left))
			c.seq++
		default:
			// All size bytes are given: r must end here.
			var one [1]byte
			n, err := io.ReadFull(c.r, one[:])
			switch {
			case n == 1:
				rest, rerr := io.Copy(io.Discard, c.r)
				c.err = errContentSize(c.size+1+rest, c.size)
				if rerr != nil {
					c.err = errContentRead(rerr)
				}
			case !errors.Is(err, io.EOF):
				c.err = errContentRead(err)
			}
			c.head = binary.BigEndian.AppendUint16(c.head[:0], 0xffff) // the trailer: -1 fields
			c.end = true
		}
	}
}
