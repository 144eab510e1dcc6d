package runtime_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsURL is the machine's NATS server with JetStream.
func natsURL() string {
	if u := os.Getenv("SLUICE_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// writeProject writes a project directory from path → content.
func writeProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestJetStreamSurvivesKill9: a runtime killed with SIGKILL in the middle
// of a flow never acknowledged its message; the next runtime gets it
// again (delivered 2) and finishes it. A message whose flow keeps failing
// ends in the dead-letter stream with the error. Nothing is lost, and the
// metrics count what happened.
func TestJetStreamSurvivesKill9(t *testing.T) {
	b := make([]byte, 4)
	rand.Read(b)
	s := "K" + hex.EncodeToString(b)
	nc, err := nats.Connect(natsURL())
	if err != nil {
		t.Fatalf("NATS at %s: %v", natsURL(), err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	for name, subj := range map[string]string{s: s + ".in", s + "_DL": s + ".dead"} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}, Storage: jetstream.MemoryStorage}); err != nil {
			t.Fatal(err)
		}
		defer js.DeleteStream(ctx, name)
	}
	out, err := nc.SubscribeSync(s + ".out")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	// The backend hangs the first delivery: the runtime is killed while
	// its flow waits here.
	hit := make(chan struct{}, 4)
	hang := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit <- struct{}{}
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer backend.Close()
	defer close(hang)

	proj := writeProject(t, map[string]string{
		"sluice.yaml": "name: events\n",
		"flows/orders.yaml": `flow: orders
timeout: 3s
trigger:
  nats:
    connection: bus
    subject: ` + s + `.in
    stream: ` + s + `
    consumer: writer
    ackWait: 4s
    retry: {attempts: 2, backoff: 50ms}
    deadLetter: ` + s + `.dead
steps:
  - switch:
      - when: .body.poison
        steps:
          - fail: 'order ${ .body.id } is poison'
      - when: .source.delivered == 1
        steps:
          - http: {request: {url: '` + backend.URL + `/slow'}, timeout: 3s}
  - publish:
      connection: bus
      subject: ` + s + `.out
      body: '{id: .body.id, delivered: .source.delivered}'
`,
	})
	bar := buildBARInProcess(t, proj)
	conf := configDir(t, map[string]string{
		"policyproject/Connections/bus.yaml": "type: nats\nurl: " + natsURL() + "\ncredentials: bus\n",
		"setdbparms/creds.txt":               "bus sluice nats-s3cret-pw\n",
	})
	first := startRuntime(t, "--bar", bar, "--config-dir", conf)
	if _, err := js.Publish(ctx, s+".in", []byte(`{"id": "o-1"}`)); err != nil {
		t.Fatal(err)
	}
	receive(t, hit, "the first delivery to reach the slow backend")
	first.signal(syscall.SIGKILL)
	first.wait()

	second := startRuntime(t, "--bar", bar, "--config-dir", conf)
	m, err := out.NextMsg(waitLong)
	if err != nil {
		t.Fatalf("no output after the restart: %v\n%s", err, second.log)
	}
	var got map[string]any
	json.Unmarshal(m.Data, &got)
	if got["id"] != "o-1" || got["delivered"] != float64(2) {
		t.Fatalf("output %s, want o-1 delivered 2", m.Data)
	}

	if _, err := js.Publish(ctx, s+".in", []byte(`{"id": "o-2", "poison": true}`)); err != nil {
		t.Fatal(err)
	}
	dl, _ := js.Stream(ctx, s+"_DL")
	var raw *jetstream.RawStreamMsg
	eventually(t, "the poison message in the dead-letter stream", func() bool {
		raw, err = dl.GetMsg(ctx, 1)
		return err == nil
	})
	if string(raw.Data) != `{"id": "o-2", "poison": true}` || !strings.Contains(raw.Header.Get("Sluice-Error"), "order o-2 is poison") ||
		raw.Header.Get("Sluice-Attempts") != "2" || raw.Header.Get("Sluice-Flow") != "events/orders" {
		t.Fatalf("dead letter %s %v", raw.Data, raw.Header)
	}

	metrics := string(get(t, second.adminURL("/metrics")).body)
	for _, want := range []string{
		`sluice_trigger_messages_total{flow="orders",outcome="acked",project="events",trigger="nats"} 1`,
		`sluice_trigger_messages_total{flow="orders",outcome="dead_lettered",project="events",trigger="nats"} 1`,
		`sluice_trigger_messages_total{flow="orders",outcome="retried",project="events",trigger="nats"} 1`,
		`sluice_trigger_messages_total{flow="orders",outcome="received",project="events",trigger="nats"} 3`,
		`sluice_trigger_in_flight{flow="orders",project="events",trigger="nats"} 0`,
		`sluice_connection_up{policy="bus"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s\n%s", want, grepLines(metrics, "sluice_trigger", "sluice_connection"))
		}
	}
	// A drain acknowledges nothing it did not finish and exits cleanly.
	second.signal(syscall.SIGTERM)
	if code := second.wait(); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, second.log)
	}
	if strings.Contains(first.log.String()+second.log.String(), "nats-s3cret-pw") {
		t.Error("a log shows the NATS password")
	}
	cons, _ := js.Consumer(ctx, s, "writer")
	info, err := cons.Info(ctx)
	if err != nil || info.NumAckPending != 0 || info.NumPending != 0 {
		t.Fatalf("consumer left pending: %+v %v", info, err)
	}
}

func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
