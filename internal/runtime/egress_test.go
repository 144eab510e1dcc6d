package runtime_test

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestEgressPolicyClosesLocalAddresses: an http step may not reach a
// server on loopback (here the order backend; on a shared host it might
// be the control plane or another tenant's runtime) until the policy the
// control plane pushes, or --egress-allow, opens it; a refused request
// never reaches the server.
func TestEgressPolicyClosesLocalAddresses(t *testing.T) {
	b := newBackend(t)
	orders := buildBAR(t, "../../examples/orders")
	items := `{"items":[{"sku":"ABC-001","qty":2,"price":9.99}]}`
	order := func(p *proc) answer {
		return do(t, "POST", p.url("/orders/acme"), strings.NewReader(items), "Content-Type", "application/json")
	}
	received := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.orders)
	}

	// Closed: the allow-list names another address only.
	closed := startRuntime(t, "--bar", orders, "--config-dir", standardConfig(t, b, nil), "--egress-allow", "192.0.2.1")
	// The example's flow catches the failure and answers its own 503.
	if a := order(closed); a.status != 503 || !bytes.Contains(a.body, []byte("order backend unreachable")) {
		t.Errorf("order through a closed policy: %d %s", a.status, a.body)
	}
	if n := received(); n != 0 {
		t.Errorf("the backend received %d orders through a closed policy", n)
	}

	// Opened by the pushed policy file, by address and port.
	u, _ := url.Parse(b.srv.URL)
	policy := fmt.Sprintf(`{"allow":[%q],"deny":["127.0.0.1:1"]}`, u.Host)
	open := startRuntime(t, "--bar", orders, "--egress-allow", "192.0.2.1",
		"--config-dir", standardConfig(t, b, map[string]string{"egress/policy.json": policy}))
	if a := order(open); a.status != 201 {
		t.Errorf("order through an open policy: %d %s", a.status, a.body)
	}
	if n := received(); n != 1 {
		t.Errorf("the backend received %d orders, want 1", n)
	}

	// A policy file that does not parse stops the start, naming it.
	bad := launch(t, "--bar", orders, "--config-dir", standardConfig(t, b, map[string]string{"egress/policy.json": `{"allow":["10.0.0.0/40"]}`}))
	if code := bad.wait(); code == 0 || !strings.Contains(bad.log.String(), "egress/policy.json") {
		t.Errorf("bad policy file: exit %d, log %s", code, bad.log)
	}
}
