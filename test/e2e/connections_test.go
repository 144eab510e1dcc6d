package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// TestConnectionDownCondition: a runtime whose flow listens on a NATS
// server that is not there still starts (the connection retries in the
// background), and its status says so: ConnectionsReady False naming the
// policy — not its URL, not its credentials — while the policy that
// reaches the machine's NATS is not named.
func TestConnectionDownCondition(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t)

	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := l.Addr().String()
	l.Close()

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "flows"), 0o755)
	for name, data := range map[string]string{
		"sluice.yaml":       "name: listen\n",
		"flows/ping.yaml":   "flow: ping\ntrigger: {http: {path: /ping}}\nsteps: [{map: '\"pong\"'}]\n",
		"flows/orders.yaml": "flow: orders\ntrigger: {nats: {connection: bus, subject: e2e.orders}}\nsteps: [{map: .body}]\n",
		"flows/audit.yaml":  "flow: audit\ntrigger: {nats: {connection: live, subject: e2e.audit}}\nsteps: [{map: .body}]\n",
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)
	}
	content, _, err := bar.Build(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	barURL := putBAR(t, admin, "listen", content)

	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	for name, data := range map[string]string{
		"Conns/bus.yaml":  "type: nats\nurl: nats://" + deadAddr + "\ncredentials: bus\n",
		"Conns/live.yaml": "type: nats\nurl: nats://127.0.0.1:4222\n",
	} {
		w, _ := zw.Create(name)
		w.Write([]byte(data))
	}
	zw.Close()
	cfg := func(name, typ string, data []byte) map[string]any {
		return map[string]any{"metadata": map[string]string{"name": name}, "spec": map[string]any{"type": typ, "data": base64.StdEncoding.EncodeToString(data)}}
	}
	for name, c := range map[string]map[string]any{
		"conns": cfg("conns", "policyproject", zbuf.Bytes()),
		"creds": cfg("creds", "setdbparms", []byte("bus sluice nats-down-s3cret\n")),
	} {
		if code, body := admin.Do("PUT", "/api/v1/configurations/"+name, c); code != 201 {
			t.Fatalf("configuration %s: %d %s", name, code, body)
		}
	}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/listen", map[string]any{
		"metadata": map[string]string{"name": "listen"},
		"spec":     map[string]any{"barURL": []string{barURL}, "configurations": []string{"conns", "creds"}},
	}); code != 201 {
		t.Fatalf("runtime: %d %s", code, body)
	}
	waitReady(t, admin, "listen", 1)

	var cond struct{ Type, Status, Reason, Message string }
	var raw []byte
	for i := 0; i < 240 && cond.Status != "False"; i++ {
		_, raw = admin.Do("GET", "/api/v1/integration-runtimes/listen", nil)
		var rt struct {
			Status struct {
				Conditions []struct{ Type, Status, Reason, Message string }
			}
		}
		json.Unmarshal(raw, &rt)
		for _, c := range rt.Status.Conditions {
			if c.Type == "ConnectionsReady" {
				cond = c
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if cond.Status != "False" || cond.Reason != "ConnectionDown" || cond.Message != "not connected (reconnecting): bus (nats)" {
		t.Fatalf("ConnectionsReady %+v; want False ConnectionDown naming bus alone", cond)
	}
	if strings.Contains(string(raw), deadAddr) || strings.Contains(string(raw), "s3cret") {
		t.Fatalf("the status shows the connection's URL or password: %s", raw)
	}
}
