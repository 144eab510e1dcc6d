package runtime_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/connectors/sqlconn"
	"github.com/sluice-dev/sluice/internal/flow"
)

// TestSQLStepsAgainstPostgresAndMariaDB: connections come from the
// runtime's policyproject configurations, the PostgreSQL user and password
// from setdbparms; HTTP flows write in a transaction and read back rows
// as JSON from both servers.
func TestSQLStepsAgainstPostgresAndMariaDB(t *testing.T) {
	b := make([]byte, 4)
	rand.Read(b)
	tb := "sluice_rt_" + hex.EncodeToString(b)
	pg := &flow.Connection{Name: "pg", Type: "postgres", URL: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"}
	maria := &flow.Connection{Name: "maria", Type: "mysql", URL: "mysql://root@127.0.0.1:3306/test"}
	setup := sqlconn.NewPool()
	defer setup.Close()
	ctx := context.Background()
	for _, c := range []*flow.Connection{pg, maria} {
		if _, err := setup.Run(ctx, c, false, []flow.Statement{{Exec: true, Parts: []string{"CREATE TABLE " + tb + " (id VARCHAR(40) PRIMARY KEY, total DECIMAL(10,2) NOT NULL)"}}}); err != nil {
			t.Fatalf("%s: %v", c.Type, err)
		}
		defer setup.Run(ctx, c, false, []flow.Statement{{Exec: true, Parts: []string{"DROP TABLE " + tb}}})
	}

	proj := writeProject(t, map[string]string{
		"sluice.yaml": "name: shop\n",
		"flows/put.yaml": `flow: put-order
trigger:
  http: {method: PUT, path: '/orders/{id}'}
steps:
  - sql:
      connection: orders-pg
      transaction:
        - exec: 'INSERT INTO ` + tb + ` (id, total) VALUES (:id, :total)'
          params: {id: .params.id, total: .body.total}
        - exec: 'UPDATE ` + tb + ` SET total = total + :extra WHERE id = :id'
          params: {id: .params.id, extra: .body.extra}
  - set: {pg: .response}
  - sql:
      connection: orders-maria
      exec: 'INSERT INTO ` + tb + ` (id, total) VALUES (:id, :total)'
      params: {id: .params.id, total: .body.total}
  - reply: {status: 201, body: '{pg: .vars.pg, maria: .response}'}
`,
		"flows/get.yaml": `flow: get-order
trigger:
  http: {method: GET, path: '/orders/{id}'}
steps:
  - sql:
      connection: orders-pg
      query: 'SELECT id, total FROM ` + tb + ` WHERE id = :id'
      params: {id: .params.id}
  - set: {pg: .response.rows}
  - sql:
      connection: orders-maria
      query: 'SELECT id, total FROM ` + tb + ` WHERE id = :id'
      params: {id: .params.id}
  - reply:
      status: 'if (.vars.pg | length) == 0 then 404 else 200 end'
      body: '{pg: .vars.pg, maria: .response.rows}'
`,
	})
	conf := configDir(t, map[string]string{
		"policyproject/Connections/orders-pg.yaml":    "type: postgres\nurl: postgres://127.0.0.1:5432/test?sslmode=disable\ncredentials: orders-db\nmaxConns: 2\n",
		"policyproject/Connections/orders-maria.yaml": "type: mysql\nurl: mysql://root@127.0.0.1:3306/test\n",
		"setdbparms/creds.txt":                        "orders-db postgres pg-s3cret-pw\n",
	})
	p := startRuntime(t, "--bar", buildBARInProcess(t, proj), "--config-dir", conf, "--trace", "user")

	a := do(t, "PUT", p.url("/orders/o-1"), strings.NewReader(`{"total": 19.99, "extra": 0.01}`), "content-type", "application/json")
	if a.status != 201 || string(a.body) != `{"maria":{"rowsAffected":1},"pg":{"results":[{"rowsAffected":1},{"rowsAffected":1}]}}` {
		t.Fatalf("put: %d %s", a.status, a.body)
	}
	a = get(t, p.url("/orders/o-1"))
	if a.status != 200 || string(a.body) != `{"maria":[{"id":"o-1","total":19.99}],"pg":[{"id":"o-1","total":20.00}]}` {
		t.Fatalf("get: %d %s", a.status, a.body)
	}
	// A failing transaction (duplicate key) leaves PostgreSQL as it was
	// and answers 502 naming the statement.
	a = do(t, "PUT", p.url("/orders/o-1"), strings.NewReader(`{"total": 1, "extra": 1}`), "content-type", "application/json")
	if a.status != 502 || !strings.Contains(string(a.body), "statement 1: ") {
		t.Fatalf("duplicate put: %d %s", a.status, a.body)
	}
	a = get(t, p.url("/orders/o-1"))
	if !strings.Contains(string(a.body), `"pg":[{"id":"o-1","total":20.00}]`) {
		t.Fatalf("after the failed transaction: %s", a.body)
	}
	if a := get(t, p.url("/orders/nope")); a.status != 404 {
		t.Fatalf("missing order: %d %s", a.status, a.body)
	}
	trace := string(get(t, p.adminURL("/trace/user/download")).body)
	if strings.Contains(p.log.String()+trace, "pg-s3cret-pw") {
		t.Fatal("the database password reached a log or trace")
	}
}
