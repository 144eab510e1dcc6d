package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// ExplainAuditList returns the query plan of the audit page f asks for,
// as the store would run it: PostgreSQL's EXPLAIN text, or SQLite's
// EXPLAIN QUERY PLAN details, one line each. For tests of the indexes.
func ExplainAuditList(ctx context.Context, st Store, f AuditFilter) (string, error) {
	s, err := sqlOf(st)
	if err != nil {
		return "", err
	}
	query, args := auditListQuery(f)
	explain := "EXPLAIN "
	if s.d.name == "sqlite" {
		explain = "EXPLAIN QUERY PLAN "
	}
	// Sent as the store sends the listing (queryPlanned): planned for
	// these values.
	rows, err := s.db.QueryContext(ctx, explain+s.q(query), append(slices.Clip(s.d.planned), args...)...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var line string
		if s.d.name == "sqlite" {
			var id, parent, unused int
			err = rows.Scan(&id, &parent, &unused, &line)
		} else {
			err = rows.Scan(&line)
		}
		if err != nil {
			return "", err
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n"), rows.Err()
}

// AuditStatistics counts the planner statistics the store holds about the
// audit table: PostgreSQL's pg_stats columns, SQLite's sqlite_stat1 rows.
func AuditStatistics(ctx context.Context, st Store) (int, error) {
	s, err := sqlOf(st)
	if err != nil {
		return 0, err
	}
	q := `SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'audit_events'`
	if s.d.name == "sqlite" {
		// sqlite_stat1 exists once something was analyzed.
		var tables int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'`).Scan(&tables); err != nil || tables == 0 {
			return 0, err
		}
	} else {
		q = `SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'audit_events'`
	}
	var n int
	err = s.db.QueryRowContext(ctx, q).Scan(&n)
	return n, err
}

func sqlOf(st Store) (*sqlStore, error) {
	switch v := st.(type) {
	case *sqliteStore:
		return v.sqlStore, nil
	case *postgresStore:
		return v.sqlStore, nil
	}
	return nil, fmt.Errorf("not a SQL store: %T", st)
}
