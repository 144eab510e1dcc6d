// Package sqlconn runs the statements of sql steps on PostgreSQL (through
// pgx) and MySQL/MariaDB (through go-sql-driver/mysql): one connection
// pool per policy, parameters bound by the driver as placeholders ($n,
// ?) — never written into the statement's text — rows returned as JSON
// values, execs with their affected-row counts, optionally all in one
// transaction.
package sqlconn

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sluice-dev/sluice/internal/flow"
)

// Defaults of a pool; a policy's maxConns overrides the size.
const (
	defaultMaxConns = 8
	maxRows         = 10_000 // rows one query may return into a message
)

// Pool holds the database handles of one runtime, one per policy.
type Pool struct {
	mu     sync.Mutex
	dbs    map[string]*sql.DB
	closed bool
}

// NewPool returns an empty pool; databases are opened on first use.
func NewPool() *Pool { return &Pool{dbs: map[string]*sql.DB{}} }

// Close closes every database handle.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, db := range p.dbs {
		db.Close()
	}
	p.dbs = map[string]*sql.DB{}
}

func (p *Pool) db(c *flow.Connection) (*sql.DB, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("connections closed")
	}
	if db := p.dbs[c.Name]; db != nil {
		return db, nil
	}
	db, err := open(c)
	if err != nil {
		return nil, err
	}
	n := defaultMaxConns
	if v, ok := c.Options["maxConns"]; ok {
		if f, ok := v.(float64); ok && f >= 1 && f <= 1000 {
			n = int(f)
		} else if i, ok := v.(int); ok && i >= 1 && i <= 1000 {
			n = i
		} else {
			return nil, fmt.Errorf("policy %s: maxConns must be an integer from 1 to 1000", c.Name)
		}
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	p.dbs[c.Name] = db
	return db, nil
}

// open builds the driver's configuration from the policy, with the
// credential set as fields, never through a connection string a log
// could show.
func open(c *flow.Connection) (*sql.DB, error) {
	switch c.Type {
	case "postgres":
		cfg, err := pgx.ParseConfig(c.URL)
		if err != nil {
			return nil, fmt.Errorf("policy %s: invalid postgres url", c.Name)
		}
		if c.Credential != nil {
			cfg.User, cfg.Password = c.Credential.User, c.Credential.Password.Reveal()
		}
		// sslmode verify-ca and verify-full check the server against
		// the runtime's trust store unless the URL names sslrootcert.
		for _, tc := range append([]*tls.Config{cfg.TLSConfig}, fallbackTLS(cfg)...) {
			if tc != nil && tc.RootCAs == nil {
				tc.RootCAs = c.RootCAs
			}
		}
		return stdlib.OpenDB(*cfg), nil
	case "mysql":
		cfg, err := mysqlConfig(c)
		if err != nil {
			return nil, err
		}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", c.Name, err)
		}
		return sql.OpenDB(conn), nil
	}
	return nil, fmt.Errorf("no SQL driver for connections of type %q", c.Type)
}

// mysqlConfig reads mysql://[user@]host[:port]/database[?param=value…];
// the parameters are the driver's DSN parameters.
func mysqlConfig(c *flow.Connection) (*mysql.Config, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("policy %s: invalid mysql url", c.Name)
	}
	host := u.Host
	if u.Port() == "" {
		host += ":3306"
	}
	dsn := "tcp(" + host + ")/" + strings.TrimPrefix(u.Path, "/")
	if u.RawQuery != "" {
		dsn += "?" + u.RawQuery
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("policy %s: invalid mysql url parameters", c.Name)
	}
	if u.User != nil {
		cfg.User = u.User.Username()
	}
	if c.Credential != nil {
		cfg.User, cfg.Passwd = c.Credential.User, c.Credential.Password.Reveal()
	}
	// Values are always sent apart from the statement.
	cfg.InterpolateParams = false
	// tls=true verifies the server against the runtime's trust store.
	if cfg.TLSConfig == "true" {
		cfg.TLS = c.TLSConfig()
		cfg.TLS.ServerName = u.Hostname()
	}
	cfg.ParseTime = true
	return cfg, nil
}

// Run executes the statements, in one transaction when tx is set: a
// failing statement rolls back the ones before it.
func (p *Pool) Run(ctx context.Context, c *flow.Connection, tx bool, stmts []flow.Statement) ([]map[string]any, error) {
	db, err := p.db(c)
	if err != nil {
		return nil, err
	}
	var q querier = db
	var t *sql.Tx
	if tx {
		if t, err = db.BeginTx(ctx, nil); err != nil {
			return nil, err
		}
		defer t.Rollback() // a no-op after Commit
		q = t
	}
	out := make([]map[string]any, 0, len(stmts))
	for i, st := range stmts {
		text := join(c.Type, st.Parts)
		var res map[string]any
		if st.Exec {
			res, err = execute(ctx, q, text, st.Args)
		} else {
			res, err = query(ctx, q, text, st.Args)
		}
		if err != nil {
			if len(stmts) > 1 {
				return nil, fmt.Errorf("statement %d: %w", i+1, err)
			}
			return nil, err
		}
		out = append(out, res)
	}
	if t != nil {
		if err := t.Commit(); err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
	}
	return out, nil
}

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// join puts the driver's placeholders between the parts.
func join(typ string, parts []string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			if typ == "postgres" {
				b.WriteString("$" + strconv.Itoa(i))
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteString(p)
	}
	return b.String()
}

func execute(ctx context.Context, q querier, text string, args []any) (map[string]any, error) {
	r, err := q.ExecContext(ctx, text, args...)
	if err != nil {
		return nil, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return nil, err
	}
	return map[string]any{"rowsAffected": n}, nil
}

func query(ctx context.Context, q querier, text string, args []any) (map[string]any, error) {
	rows, err := q.QueryContext(ctx, text, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	list := []any{}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if len(list) == maxRows {
			return nil, fmt.Errorf("query returned more than %d rows (add a LIMIT)", maxRows)
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make(map[string]any, len(cols))
		for i, col := range cols {
			row[col.Name()] = jsonValue(col.DatabaseTypeName(), vals[i])
		}
		list = append(list, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return map[string]any{"rows": list, "count": len(list)}, nil
}

// jsonValue turns what a driver scanned into a JSON value by the
// column's type: numbers stay numbers (decimals exact), json columns are
// decoded, binary is base64, times are RFC 3339.
func jsonValue(typ string, v any) any {
	switch v := v.(type) {
	case nil, bool, int64, float64, string:
		if s, ok := v.(string); ok {
			return textValue(typ, s)
		}
		return v
	case float32:
		return float64(v)
	case int32:
		return int64(v)
	case time.Time:
		return v.Format(time.RFC3339Nano)
	case []byte:
		switch strings.ToUpper(typ) {
		case "BYTEA", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "BIT", "GEOMETRY":
			return base64.StdEncoding.EncodeToString(v)
		}
		return textValue(typ, string(v))
	}
	// Anything else (pgx's own types) as the JSON its type gives.
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return string(b)
	}
	return out
}

func textValue(typ, s string) any {
	switch strings.ToUpper(typ) {
	case "JSON", "JSONB":
		var out any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if dec.Decode(&out) == nil {
			return out
		}
	case "NUMERIC", "DECIMAL", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "MEDIUMINT", "INT4", "INT8", "INT2",
		"UNSIGNED INT", "UNSIGNED BIGINT", "UNSIGNED SMALLINT", "UNSIGNED TINYINT", "UNSIGNED MEDIUMINT", "FLOAT", "DOUBLE", "FLOAT4", "FLOAT8":
		if json.Valid([]byte(s)) {
			return json.Number(s)
		}
	}
	return s
}

func fallbackTLS(cfg *pgx.ConnConfig) []*tls.Config {
	var out []*tls.Config
	for _, f := range cfg.Fallbacks {
		out = append(out, f.TLSConfig)
	}
	return out
}
