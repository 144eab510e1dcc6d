// Package store owns Sluice's persistence: one Store interface with two
// implementations, SQLite (the embedded default, pure Go, WAL mode) and
// PostgreSQL (pgx v5, shared by several control-plane replicas), plus the
// versioned migrations embedded in the binary. It holds plain SQL and maps
// database errors to ErrNotFound and ErrConflict; it knows nothing about
// HTTP, and never sees a secret in clear text: sealed values arrive already
// encrypted by the secret package.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/sluice-dev/sluice/internal/secret"
)

// Errors handlers map to HTTP answers in one place.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: already exists")
)

// Store is everything the control plane persists. Both implementations
// pass the same test suite (store_test.go).
type Store interface {
	secret.KeyStore

	// Kind is "sqlite" or "postgres".
	Kind() string
	// Location says where the data lives, without credentials.
	Location() string
	// Ready reports whether the database answers and every migration this
	// binary knows has been applied.
	Ready(ctx context.Context) error
	// SchemaVersion is the highest migration applied.
	SchemaVersion(ctx context.Context) (int, error)
	Close() error

	IAM
	Artifacts
	Runtimes
	Apps
	RefreshTokens
	Published
	Leadership
	DashboardSessions
	RateWindows
	ChangeFeed
}

// DefaultSQLiteFile is the database file of the embedded default, inside the
// data directory.
const DefaultSQLiteFile = "sluice.db"

// Open opens the store named by dsn and applies pending migrations. An empty
// dsn selects SQLite in dataDir; postgres:// or postgresql:// selects
// PostgreSQL; sqlite:PATH selects a SQLite file elsewhere.
func Open(ctx context.Context, dsn, dataDir string) (Store, error) {
	switch {
	case dsn == "":
		return openSQLite(ctx, filepath.Join(dataDir, DefaultSQLiteFile))
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//"))
	default:
		return nil, fmt.Errorf("store %q is not understood: use postgres://user@host:port/db or sqlite:PATH, or leave it empty for SQLite in the data dir", redactDSN(dsn))
	}
}

// redactDSN drops any password from a connection string so it can be shown.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparseable)"
		}
		return dsn
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
