package sqlconn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/secret"
)

// These tests run against the machine's PostgreSQL (trust auth, database
// test) and MariaDB (root without a password, database test); every test
// makes tables of its own and drops them.

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func databases() map[string]*flow.Connection {
	return map[string]*flow.Connection{
		// The password is ignored by trust auth; it is there to show it
		// never reaches an error.
		"postgres": {Name: "pg", Type: "postgres", URL: env("SLUICE_TEST_PG_URL", "postgres://127.0.0.1:5432/test?sslmode=disable"),
			Credential: &flow.Credential{User: "postgres", Password: secret.New("pg-s3cret-pw")}, Options: map[string]any{"maxConns": 2}},
		"mysql": {Name: "maria", Type: "mysql", URL: env("SLUICE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"), Options: map[string]any{}},
	}
}

// stmt cuts a statement at its :name parameters the way the flow loader
// does (here by hand: the parts are what the engine hands over).
func stmt(exec bool, parts []string, args ...any) flow.Statement {
	return flow.Statement{Exec: exec, Parts: parts, Args: args}
}

func table(t *testing.T) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "sluice_t_" + hex.EncodeToString(b)
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStatementsOnRealServers(t *testing.T) {
	for typ, c := range databases() {
		t.Run(typ, func(t *testing.T) {
			ctx := context.Background()
			p := NewPool()
			defer p.Close()
			tb := table(t)
			jsonType, ts := "JSONB", "TIMESTAMPTZ"
			if typ == "mysql" {
				jsonType, ts = "JSON", "DATETIME(3)"
			}
			create := "CREATE TABLE " + tb + " (id VARCHAR(40) PRIMARY KEY, qty INTEGER NOT NULL, total DECIMAL(10,2), paid BOOLEAN, meta " + jsonType + ", at " + ts + ", note TEXT)"
			if _, err := p.Run(ctx, c, false, []flow.Statement{stmt(true, []string{create})}); err != nil {
				t.Fatal(err)
			}
			defer p.Run(ctx, c, false, []flow.Statement{stmt(true, []string{"DROP TABLE " + tb})})

			// A value that would break out of a string literal if it were
			// interpolated is stored as it is.
			evil := `x'); DROP TABLE ` + tb + `; --`
			ins := strings.Split("INSERT INTO "+tb+" (id, qty, total, paid, meta, at, note) VALUES (?, ?, ?, ?, ?, ?, ?)", "?")
			res, err := p.Run(ctx, c, false, []flow.Statement{
				stmt(true, ins, "o-1", int64(2), 19.98, true, `{"tags":["a"]}`, "2026-01-02 03:04:05", evil),
			})
			if err != nil || asJSON(t, res) != `[{"rowsAffected":1}]` {
				t.Fatalf("insert: %v %v", asJSON(t, res), err)
			}
			res, err = p.Run(ctx, c, false, []flow.Statement{
				stmt(false, []string{"SELECT id, qty, total, paid, meta, note, at IS NOT NULL AS has_at, NULL AS nothing FROM " + tb + " WHERE id = ", " AND qty >= ", ""}, "o-1", int64(1)),
			})
			if err != nil {
				t.Fatal(err)
			}
			got := asJSON(t, res)
			paid, hasAt, meta := `true`, `true`, `{"tags":["a"]}`
			if typ == "mysql" {
				// MariaDB's BOOLEAN is TINYINT(1), and its JSON is LONGTEXT
				// the driver cannot tell from text.
				paid, hasAt, meta = `1`, `1`, asJSON(t, `{"tags":["a"]}`)
			}
			want := `[{"count":1,"rows":[{"has_at":` + hasAt + `,"id":"o-1","meta":` + meta + `,"note":` + asJSON(t, evil) + `,"nothing":null,"paid":` + paid + `,"qty":2,"total":19.98}]}]`
			if got != want {
				t.Fatalf("rows\n got %s\nwant %s", got, want)
			}

			// A transaction whose second statement fails leaves nothing
			// behind; execs report their counts.
			_, err = p.Run(ctx, c, true, []flow.Statement{
				stmt(true, []string{"UPDATE " + tb + " SET qty = qty + 1 WHERE id = ", ""}, "o-1"),
				stmt(true, ins, "o-1", int64(1), 1.0, false, `{}`, nil, nil), // duplicate key
			})
			if err == nil || !strings.HasPrefix(err.Error(), "statement 2: ") {
				t.Fatalf("failing transaction: %v", err)
			}
			res, err = p.Run(ctx, c, true, []flow.Statement{
				stmt(true, []string{"UPDATE " + tb + " SET qty = qty + 1 WHERE id = ", ""}, "o-1"),
				stmt(true, ins, "o-2", int64(5), nil, nil, nil, nil, nil),
				stmt(false, []string{"SELECT id, qty FROM " + tb + " ORDER BY id"}),
			})
			if err != nil || asJSON(t, res) != `[{"rowsAffected":1},{"rowsAffected":1},{"count":2,"rows":[{"id":"o-1","qty":3},{"id":"o-2","qty":5}]}]` {
				t.Fatalf("transaction: %s %v", asJSON(t, res), err)
			}

			// A server error names the problem, never the password.
			_, err = p.Run(ctx, c, false, []flow.Statement{stmt(false, []string{"SELECT nope FROM " + tb})})
			if err == nil || strings.Contains(err.Error(), "pg-s3cret-pw") {
				t.Fatalf("bad column: %v", err)
			}
		})
	}
}

func TestBadCredentialsDoNotShowThePassword(t *testing.T) {
	c := databases()["mysql"]
	c = &flow.Connection{Name: "maria", Type: "mysql", URL: c.URL, Credential: &flow.Credential{User: "nobody", Password: secret.New("maria-s3cret-pw")}}
	p := NewPool()
	defer p.Close()
	_, err := p.Run(context.Background(), c, false, []flow.Statement{stmt(false, []string{"SELECT 1"})})
	if err == nil || strings.Contains(err.Error(), "maria-s3cret-pw") {
		t.Fatalf("got %v", err)
	}
}
