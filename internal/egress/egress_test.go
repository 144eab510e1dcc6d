package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	p, err := Parse(
		[]string{"127.0.0.1:9000", "10.1.0.0/16", "192.168.5.5", "backend.internal:8443", "*.corp.example", "127.0.0.1:8080"},
		[]string{"127.0.0.1:8080", "127.0.0.0/8:7801-7899", "127.0.0.1:7900"},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		host, addr string
		ok         bool
	}{
		{"", "93.184.216.34:443", true},              // public
		{"", "[2606:2800:220:1::1]:443", true},       // public v6
		{"", "127.0.0.1:9000", true},                 // allowed exactly
		{"", "127.0.0.1:9001", false},                // loopback, other port
		{"", "[::ffff:127.0.0.1]:9001", false},       // mapped loopback
		{"", "[::1]:9000", false},                    // v6 loopback not allowed
		{"", "10.1.2.3:22", true},                    // allowed CIDR, any port
		{"", "10.2.0.1:80", false},                   // private outside it
		{"", "192.168.5.5:1", true},                  // allowed address, any port
		{"", "169.254.169.254:80", false},            // metadata service
		{"", "0.0.0.0:80", false},                    // unspecified
		{"", "100.64.0.1:80", false},                 // CGNAT
		{"", "[fe80::1]:80", false},                  // link-local v6
		{"", "[fd00::1]:80", false},                  // unique local
		{"backend.internal", "10.9.9.9:8443", true},  // allowed name, its port
		{"backend.internal", "10.9.9.9:22", false},   // allowed name, other port
		{"BACKEND.internal.", "10.9.9.9:8443", true}, // names compare folded
		{"api.corp.example", "10.9.9.9:22", true},    // wildcard
		{"corp.example", "10.9.9.9:22", false},       // the wildcard is for subdomains
		{"evil.example", "127.0.0.1:9001", false},    // a public name resolving to loopback
		{"", "127.0.0.1:8080", true},                 // denied, but allowed by an exact entry
		{"", "127.0.0.1:7801", false},                // denied runtime port
		{"", "127.0.0.1:7850", false},                // denied range
		{"", "127.0.0.1:7900", false},                // denied
		{"", "10.1.0.1:7850", true},                  // the range is on loopback only
	} {
		err := p.Check(c.host, netip.MustParseAddrPort(c.addr))
		if (err == nil) != c.ok {
			t.Errorf("%s via %q: %v, want allowed %v", c.addr, c.host, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrRefused) {
			t.Errorf("%s: error %v is not ErrRefused", c.addr, err)
		}
	}
	// A policy with nothing allowed refuses every local range.
	var none *Policy
	if none.Check("", netip.MustParseAddrPort("127.0.0.1:1")) == nil || none.Check("", netip.MustParseAddrPort("8.8.8.8:53")) != nil {
		t.Error("nil policy")
	}
}

func TestParseRuleSaysWhatIsWrong(t *testing.T) {
	for _, s := range []string{"", " 10.0.0.1", "10.0.0.0/33", "host:0", "host:70000", "host:x", "host:9-8", "host:1-", "bad_name", "-x.example", "a..b", "*.", "http://x"} {
		if _, err := ParseRule(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	for _, s := range []string{"10.0.0.0/8", "10.0.0.0/8:443", "::1", "[::1]:9000", "fd00::/8", "host.example", "host.example:443", "*.example.com", "localhost", "127.0.0.1:7801-8800"} {
		if _, err := ParseRule(s); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
}

// TestDialerChecksTheResolvedAddress dials real sockets: a name that
// resolves to loopback is refused at connect time like the address
// itself, and a refused open port and a refused closed port answer the
// same words.
func TestDialerChecksTheResolvedAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	open := ln.Addr().String()
	_, openPort, _ := net.SplitHostPort(open)

	dial := (&Policy{}).Dialer(&net.Dialer{})
	texts := map[string]string{}
	for _, addr := range []string{open, closedAddr, "localhost:" + openPort} {
		c, err := dial(context.Background(), "tcp", addr)
		if err == nil {
			c.Close()
			t.Fatalf("%s: connected", addr)
		}
		var re *RefusedError
		if !errors.As(err, &re) {
			t.Fatalf("%s: %v is not a refusal", addr, err)
		}
		texts[addr] = strings.Replace(err.Error(), re.Addr, "ADDR", 1)
	}
	if texts[open] != texts[closedAddr] {
		t.Errorf("open and closed ports are told apart:\n%s\n%s", texts[open], texts[closedAddr])
	}
	// The allow-list opens it, by address and port.
	p, _ := Parse([]string{open}, nil)
	c, err := p.Dialer(&net.Dialer{})(context.Background(), "tcp", open)
	if err != nil {
		t.Fatalf("allowed %s: %v", open, err)
	}
	c.Close()
}
