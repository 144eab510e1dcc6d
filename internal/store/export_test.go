package store

import (
	"context"
	"database/sql"
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

// ListQueries are the store's paged lists by their op, for the plan test;
// ListQuerySources says where the test looks for every listQuery, so a new
// list cannot be left out.
var ListQueries = map[string]listQuery{
	catalogList.op: catalogList, consumerOrgList.op: consumerOrgList, appList.op: appList, appOrgList.op: appOrgList,
	appCredentialList.op: appCredentialList, configList.op: configList, barList.op: barList, identityList.op: identityList,
	apiKeyList.op: apiKeyList, apiKeyOwnerList.op: apiKeyOwnerList, credList.op: credList, ownedCredList.op: ownedCredList,
	publishedList.op: publishedList, allPublishedList.op: allPublishedList, runtimeList.op: runtimeList,
	allRuntimeList.op: allRuntimeList, traceList.op: traceList, runtimeTraceList.op: runtimeTraceList,
}

// ExplainListPage returns the plan of the page of list op after the key
// after (nil: the first page), of limit rows, for the list's own
// arguments args, as the store runs it. On PostgreSQL that is the generic
// plan of the prepared statement — what a statement settles on after five
// runs — with sequential and bitmap scans disabled, so that an empty table
// (which a sort of its one estimated row costs nothing) still shows
// whether an index serves the filter and the order; SQLite's EXPLAIN
// QUERY PLAN does not depend on the values.
func ExplainListPage(ctx context.Context, st Store, op string, after []string, limit int, args ...any) (string, error) {
	s, err := sqlOf(st)
	if err != nil {
		return "", err
	}
	l, ok := ListQueries[op]
	if !ok {
		return "", fmt.Errorf("no list %q", op)
	}
	query, all, err := l.build(Page{After: after, Limit: limit}, args)
	if err != nil {
		return "", err
	}
	var lines []string
	if s.d.name == "sqlite" {
		rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+s.q(query), all...)
		if err != nil {
			return "", err
		}
		defer rows.Close()
		for rows.Next() {
			var id, parent, unused int
			var line string
			if err := rows.Scan(&id, &parent, &unused, &line); err != nil {
				return "", err
			}
			lines = append(lines, line)
		}
		return strings.Join(lines, "\n"), rows.Err()
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	lits := make([]string, len(all))
	for i, a := range all {
		switch v := a.(type) {
		case string:
			lits[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
		default:
			lits[i] = fmt.Sprint(v)
		}
	}
	for _, q := range []string{"SET enable_seqscan = off", "SET enable_bitmapscan = off", "SET plan_cache_mode = force_generic_plan", "PREPARE list_plan AS " + query} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("%s: %w", q, err)
		}
	}
	defer conn.ExecContext(ctx, "DEALLOCATE list_plan; RESET enable_seqscan; RESET enable_bitmapscan; RESET plan_cache_mode")
	rows, err := conn.QueryContext(ctx, "EXPLAIN EXECUTE list_plan("+strings.Join(lits, ", ")+")")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", err
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n"), rows.Err()
}

// GateBarrier gives st a new grant barrier whose runs call gate(sync),
// sync being the store's own, and returns how many callers wait for its
// next run. For tests that hold a run in flight.
func GateBarrier(st Store, gate func(sync func(context.Context) bool) func(context.Context) bool) (waiting func() int) {
	s, err := sqlOf(st)
	if err != nil {
		panic(err)
	}
	var sync func(context.Context) bool
	switch v := st.(type) {
	case *postgresStore:
		sync = v.versions.sync
	case *sqliteStore:
		sync = v.version.sync
	}
	b := &barrier{sync: gate(sync)}
	s.grantsFresh = b.wait
	return b.waiting
}

// SQLiteBarrier tells, for a SQLite store, how many times its grant
// barrier has asked PRAGMA data_version, and whether it reads the WAL
// index's header instead while nothing is committed.
func SQLiteBarrier(st Store) (queries int64, walMapped bool) {
	v := st.(*sqliteStore).version
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.queries, v.wal != nil
}

// VersionsQuery is the statement of the grant barrier's runs.
const VersionsQuery = versionsQuery

// HoldPool takes every connection of st's pool that is not in use, until
// release.
func HoldPool(st Store) (release func(), err error) {
	s, err := sqlOf(st)
	if err != nil {
		return nil, err
	}
	var held []*sql.Conn
	release = func() {
		for _, c := range held {
			c.Close()
		}
	}
	for s.db.Stats().InUse < s.db.Stats().MaxOpenConnections {
		c, err := s.db.Conn(context.Background())
		if err != nil {
			release()
			return nil, err
		}
		held = append(held, c)
	}
	return release, nil
}
