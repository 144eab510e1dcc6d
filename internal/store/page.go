package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// Page asks a list for part of its rows, in the list's order. Every list
// is ordered by a key unique within it, so the order is total and a
// position in it (the key of a row) still means the same place after rows
// elsewhere came or went: a reader paging by After never sees a row twice
// nor misses one that existed throughout, whatever is inserted or deleted
// between its pages (keyset paging, not offsets).
//
// The zero Page is the whole list.
type Page struct {
	// After is the key of the last row already read (PageKey of it); nil
	// starts at the first row.
	After []string
	// Offset skips that many rows more (API Connect's offset); it costs a
	// scan of the rows skipped, never memory.
	Offset int
	// Limit is the most rows answered; 0: every row.
	Limit int
}

// Keyed is a row of a list: PageKey is its position in the list's order,
// what a Page's After takes.
type Keyed interface{ PageKey() []string }

// ErrBadPageKey is a Page.After that cannot be a key of the list (the
// wrong number of parts, or text where the key has a number).
var ErrBadPageKey = errors.New("store: the page position does not fit the list")

// keyCol is one column of a list's key, ascending; num marks an integer
// column, whose part of a position is its decimal text.
type keyCol struct {
	expr string
	num  bool
}

// listQuery is one list: what it reads, the condition that makes it the
// list (with $1… for its arguments), and the key it is ordered by.
type listQuery struct {
	op    string // what failed, in errors: "list configurations"
	cols  string // the columns scanned
	from  string // FROM and JOINs
	where string
	key   []keyCol
}

// build returns the SELECT of one page of l with its arguments (args, the
// list's own, first).
func (l listQuery) build(pg Page, args []any) (string, []any, error) {
	var b strings.Builder
	b.WriteString("SELECT " + l.cols + " " + l.from + " WHERE (" + l.where + ")")
	if pg.After != nil {
		if len(pg.After) != len(l.key) {
			return "", nil, ErrBadPageKey
		}
		lhs, rhs := make([]string, len(l.key)), make([]string, len(l.key))
		for i, k := range l.key {
			v := any(pg.After[i])
			if k.num {
				n, err := strconv.ParseInt(pg.After[i], 10, 64)
				if err != nil {
					return "", nil, ErrBadPageKey
				}
				v = n
			}
			args = append(args, v)
			lhs[i], rhs[i] = k.expr, "$"+strconv.Itoa(len(args))
		}
		// A row value comparison: both databases order it as the ORDER BY
		// below does, and PostgreSQL walks an index matching the key.
		b.WriteString(" AND (" + strings.Join(lhs, ", ") + ") > (" + strings.Join(rhs, ", ") + ")")
	}
	order := make([]string, len(l.key))
	for i, k := range l.key {
		order[i] = k.expr
	}
	b.WriteString(" ORDER BY " + strings.Join(order, ", "))
	if pg.Limit > 0 || pg.Offset > 0 {
		limit := int64(pg.Limit)
		if limit <= 0 {
			limit = 1<<62 - 1 // SQLite takes OFFSET only after a LIMIT
		}
		args = append(args, limit)
		b.WriteString(" LIMIT $" + strconv.Itoa(len(args)))
		if pg.Offset > 0 {
			args = append(args, int64(pg.Offset))
			b.WriteString(" OFFSET $" + strconv.Itoa(len(args)))
		}
	}
	return b.String(), args, nil
}

// listRows reads one page of l, each row made by scan.
func listRows[T any](ctx context.Context, s *sqlStore, l listQuery, pg Page, scan func(scanner) (T, error), args ...any) ([]T, error) {
	q, all, err := l.build(pg, args)
	if err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, q, all...)
	if err != nil {
		return nil, s.mapErr(l.op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.mapErr(l.op, err)
		}
		out = append(out, v)
	}
	return out, s.mapErr(l.op, rows.Err())
}

// countRows counts the rows of l (API Connect's total_results).
func countRows(ctx context.Context, s *sqlStore, l listQuery, args ...any) (int, error) {
	var n int
	err := s.queryRow(ctx, "SELECT COUNT(*) "+l.from+" WHERE ("+l.where+")", args...).Scan(&n)
	return n, s.mapErr(l.op, err)
}
