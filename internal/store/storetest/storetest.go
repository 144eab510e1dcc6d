// Package storetest gives tests an isolated, throw-away store of each kind:
// a SQLite file in a temporary directory, and, when SLUICE_TEST_POSTGRES
// names a PostgreSQL database, a schema of its own in that database that is
// dropped when the test ends. It is imported only by tests.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver for schema set-up
)

// EnvPostgres names the environment variable holding the PostgreSQL
// connection string the PostgreSQL suite runs against, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const EnvPostgres = "SLUICE_TEST_POSTGRES"

// Kinds lists the store kinds a test should run against: always "sqlite",
// and "postgres" when EnvPostgres is set.
func Kinds() []string {
	if os.Getenv(EnvPostgres) != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
}

// DSN returns a store connection string of the given kind, isolated for
// this test: "" (SQLite in the data dir the caller chooses) for sqlite, and
// for postgres a fresh schema selected through search_path, dropped at
// cleanup. It skips the test when PostgreSQL is not configured.
func DSN(t testing.TB, kind string) string {
	t.Helper()
	if kind == "sqlite" {
		return ""
	}
	base := os.Getenv(EnvPostgres)
	if base == "" {
		t.Skipf("PostgreSQL suite disabled: set %s", EnvPostgres)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "sluice_test_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("storetest: create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("storetest: %s is not a URL: %v", EnvPostgres, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
