package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// TestOrderEventsExample deploys examples/order-events through the API
// against the machine's NATS (JetStream) and PostgreSQL: an order posted
// to the HTTP flow is published to the ORDERS stream (a repeat is a
// duplicate), the stream-triggered flow writes it to PostgreSQL once, and
// a malformed order that reaches the stream is retried, dead-lettered
// and logged by the dead-letter flow.
func TestOrderEventsExample(t *testing.T) {
	const pgURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS example_orders (id text PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL)`); err != nil {
		t.Fatalf("PostgreSQL at %s: %v", pgURL, err)
	}
	db.Exec(`DELETE FROM example_orders`)
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	// The example's streams, as its README has an operator create them.
	for name, subj := range map[string]string{"ORDERS": "orders.placed.>", "ORDERS_DEAD": "orders.dead"} {
		js.DeleteStream(ctx, name)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}, Storage: jetstream.MemoryStorage}); err != nil {
			t.Fatal(err)
		}
		defer js.DeleteStream(ctx, name)
	}

	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t)
	content, _, err := bar.Build(ctx, "../../examples/order-events", nil)
	if err != nil {
		t.Fatal(err)
	}
	barURL := putBAR(t, admin, "order-events", content)
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	for name, data := range map[string]string{
		"Connections/bus.yaml":  "type: nats\nurl: nats://127.0.0.1:4222\n",
		"Connections/shop.yaml": "type: postgres\nurl: " + pgURL + "\n",
	} {
		w, _ := zw.Create(name)
		io.WriteString(w, data)
	}
	zw.Close()
	if code, body := admin.Do("PUT", "/api/v1/configurations/order-connections", map[string]any{
		"metadata": map[string]string{"name": "order-connections"},
		"spec":     map[string]any{"type": "policyproject", "data": base64.StdEncoding.EncodeToString(zbuf.Bytes())},
	}); code != 201 {
		t.Fatalf("configuration: %d %s", code, body)
	}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/order-events", map[string]any{
		"metadata": map[string]string{"name": "order-events"},
		"spec":     map[string]any{"barURL": []string{barURL}, "configurations": []string{"order-connections"}},
	}); code != 201 {
		t.Fatalf("runtime: %d %s", code, body)
	}
	st := waitReady(t, admin, "order-events", 1)
	endpoint := st.Status.Endpoints[0].URI

	post := func(body string) map[string]any {
		t.Helper()
		resp, err := http.Post(endpoint, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != 202 {
			t.Fatalf("POST %s: %d %v", endpoint, resp.StatusCode, out)
		}
		return out
	}
	if got := post(`{"id": "o-1", "customer": "Acme Ltd", "total": 42.5}`); got["stream"] != "ORDERS" || got["duplicate"] != false {
		t.Fatalf("first post %v", got)
	}
	if got := post(`{"id": "o-1", "customer": "Acme Ltd", "total": 42.5}`); got["duplicate"] != true {
		t.Fatalf("a repeated order was not a duplicate: %v", got)
	}
	var customer string
	var total float64
	waitFor(t, "the order in PostgreSQL", func() bool {
		return db.QueryRow(`SELECT customer, total FROM example_orders WHERE id = 'o-1'`).Scan(&customer, &total) == nil
	})
	if customer != "Acme Ltd" || total != 42.5 {
		t.Fatalf("stored %q %v", customer, total)
	}

	// A malformed order on the stream (not through the HTTP flow) fails
	// store-order's validation on every attempt.
	if _, err := js.Publish(ctx, "orders.placed.x", []byte(`{"id": "o-bad"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead letter logged and acknowledged", func() bool {
		cons, err := js.Consumer(ctx, "ORDERS_DEAD", "log-dead")
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.AckFloor.Stream == 1 && info.NumAckPending == 0
	})
	dl, _ := js.Stream(ctx, "ORDERS_DEAD")
	raw, err := dl.GetMsg(ctx, 1)
	if err != nil || string(raw.Data) != `{"id": "o-bad"}` || raw.Header.Get("Sluice-Attempts") != "3" || !strings.Contains(raw.Header.Get("Sluice-Error"), "does not match schema") {
		t.Fatalf("dead letter %v %v", raw, err)
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM example_orders`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d orders stored, want 1", n)
	}
	code, logs := admin.Do("GET", "/api/v1/integration-runtimes/order-events/logs", nil)
	if code != 200 || !bytes.Contains(logs, []byte("order o-bad failed after 3 attempts in order-events/store-order")) {
		t.Errorf("the dead-letter flow's log line is not in the runtime's logs (%d)", code)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for range 240 {
		if ok() {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatal(errors.New("timed out waiting for " + what))
}
