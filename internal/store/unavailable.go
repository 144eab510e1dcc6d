package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrUnavailable marks an error that came from the database being out of
// reach — restarting, refusing connections, dropping them, or (SQLite)
// locked past the busy timeout — rather than from the request or a bug.
// Callers answer it with 503 and Retry-After: the same request can succeed
// a moment later.
var ErrUnavailable = errors.New("store: the database is unavailable")

// Unavailable reports whether err is, or was caused by, the database being
// out of reach (see ErrUnavailable).
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01–57P03: the server is
		// shutting down, crashed or is starting; 53300: too many connections.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "53300"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff // primary result code
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	var ne net.Error
	if errors.As(err, &ne) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return false
}

// readRetries is how many more times a read (a SELECT outside a
// transaction) is tried when the database dropped its connection. The
// pool's idle connections are closed first (after a restart they are all
// dead), so the retry runs on a fresh connection.
const readRetries = 1

// retryableRead reports whether a failed query may simply run again: a
// read of its own, failed because its connection was unavailable, with
// the caller still waiting.
func retryableRead(ctx context.Context, query string, err error) bool {
	q := strings.TrimSpace(query)
	return err != nil && ctx.Err() == nil && Unavailable(err) && len(q) > 6 && strings.EqualFold(q[:6], "SELECT")
}
