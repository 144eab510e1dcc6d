// Package egress owns the policy for outbound connections that tenants
// steer: flow http steps in a runtime and external barURL fetches by the
// control plane. By default they may not reach loopback, link-local,
// private, shared (CGNAT), multicast or unspecified addresses, so a flow
// cannot talk to the control plane, another tenant's runtime or the
// host's and the network's private services. An allow-list, set per
// instance by its admins, opens what a tenant legitimately needs (CIDRs
// or host names, optionally with a port); a deny-list, set by the control
// plane, keeps its own listeners and the runtimes' ports closed even then,
// unless an allow entry names that exact address and port.
//
// The check runs on the address actually connected to, in the dialer's
// Control hook after name resolution, so a name that resolves to a public
// address when checked and to 127.0.0.1 when dialled (DNS rebinding)
// gains nothing. A refused connection is never attempted, so the answer
// is the same whether the port is open or closed.
//
// It knows nothing of flows, runtimes or the API.
package egress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// A Rule is one entry of an allow- or deny-list.
type Rule struct {
	prefix netip.Prefix // valid for address rules
	host   string       // lower case, for name rules; "*.example.com" matches subdomains
	lo, hi uint16       // port range; 0, 0: any port
	text   string
}

func (r Rule) String() string { return r.text }

// ParseRule reads one entry: an address or CIDR (10.0.0.0/8, 127.0.0.1,
// ::1, fd00::/8) or a host name (backend.internal, *.corp.example), each
// optionally with a port or a port range (127.0.0.1:9000, [::1]:9000,
// 10.0.0.0/8:443, backend.internal:8443, 127.0.0.1:7801-8800). The error
// says what is wrong with it.
func ParseRule(s string) (Rule, error) {
	r := Rule{text: s}
	if s == "" || len(s) > 253+6 || strings.TrimSpace(s) != s {
		return r, errors.New("an entry is an address, a CIDR or a host name, optionally with :port")
	}
	hostPart := s
	if h, p, err := net.SplitHostPort(s); err == nil {
		a, b, isRange := strings.Cut(p, "-")
		if !isRange {
			b = a
		}
		lo, err1 := strconv.ParseUint(a, 10, 16)
		hi, err2 := strconv.ParseUint(b, 10, 16)
		if err1 != nil || err2 != nil || lo == 0 || hi < lo {
			return r, fmt.Errorf("entry %q: the port must be 1 to 65535, or a range such as 8000-8100", s)
		}
		hostPart, r.lo, r.hi = h, uint16(lo), uint16(hi)
	}
	if pfx, err := netip.ParsePrefix(hostPart); err == nil {
		r.prefix = pfx.Masked()
		return r, nil
	}
	if a, err := netip.ParseAddr(hostPart); err == nil {
		r.prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		return r, nil
	}
	name := strings.ToLower(strings.TrimSuffix(hostPart, "."))
	if !validName(strings.TrimPrefix(name, "*.")) {
		return r, fmt.Errorf("entry %q is not an address, a CIDR or a host name", s)
	}
	r.host = name
	return r, nil
}

func validName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// matchAddr says whether r covers the address; exact says it names this
// very address and port.
func (r Rule) matchAddr(ap netip.AddrPort) (match, exact bool) {
	if !r.prefix.IsValid() || !r.prefix.Contains(ap.Addr()) {
		return false, false
	}
	if !r.ports(ap.Port()) {
		return false, false
	}
	return true, r.lo != 0 && r.lo == r.hi && r.prefix.IsSingleIP()
}

func (r Rule) matchHost(host string, port uint16) (match, exact bool) {
	if r.host == "" || host == "" {
		return false, false
	}
	ok := r.host == host || strings.HasPrefix(r.host, "*.") && strings.HasSuffix(host, r.host[1:])
	if !ok || !r.ports(port) {
		return false, false
	}
	return true, r.lo != 0 && r.lo == r.hi && !strings.HasPrefix(r.host, "*.")
}

func (r Rule) ports(p uint16) bool { return r.lo == 0 || r.lo <= p && p <= r.hi }

// Policy decides which connections may be made. The zero value and nil
// refuse exactly the default-closed ranges.
type Policy struct {
	Allow []Rule
	Deny  []Rule
}

// File is a policy as a runtime's configuration directory holds it
// (egress/policy.json) and as the API shows an allow-list.
type File struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny,omitempty"`
}

// Parse builds a policy from lists of entries, naming the first bad one.
func Parse(allow, deny []string) (*Policy, error) {
	p := &Policy{}
	for _, s := range allow {
		r, err := ParseRule(s)
		if err != nil {
			return nil, err
		}
		p.Allow = append(p.Allow, r)
	}
	for _, s := range deny {
		r, err := ParseRule(s)
		if err != nil {
			return nil, err
		}
		p.Deny = append(p.Deny, r)
	}
	return p, nil
}

// ParseFile reads a policy file's JSON.
func ParseFile(data []byte) (*Policy, error) {
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("egress policy: %v", err)
	}
	return Parse(f.Allow, f.Deny)
}

// With returns a copy of p with more entries; p may be nil.
func (p *Policy) With(allow, deny []Rule) *Policy {
	out := &Policy{}
	if p != nil {
		out.Allow, out.Deny = slices.Clone(p.Allow), slices.Clone(p.Deny)
	}
	out.Allow = append(out.Allow, allow...)
	out.Deny = append(out.Deny, deny...)
	return out
}

// closedByDefault are the ranges no tenant reaches unless allowed.
var closedByDefault = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",      // "this network", 0.0.0.0 dials the host itself
		"10.0.0.0/8",     // private
		"100.64.0.0/10",  // shared address space (carrier-grade NAT)
		"127.0.0.0/8",    // loopback
		"169.254.0.0/16", // link-local, cloud metadata services
		"172.16.0.0/12",  // private
		"192.0.0.0/24",   // IETF protocol assignments
		"192.168.0.0/16", // private
		"198.18.0.0/15",  // benchmarking
		"224.0.0.0/4",    // multicast
		"240.0.0.0/4",    // reserved, broadcast
		"::/128",         // unspecified
		"::1/128",        // loopback
		"fc00::/7",       // unique local
		"fe80::/10",      // link-local
		"ff00::/8",       // multicast
		"64:ff9b:1::/48", // local-use NAT64
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// ClosedByDefault says whether an address is in the ranges refused
// unless allowed.
func ClosedByDefault(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range closedByDefault {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// RefusedError is a connection the policy did not allow. Its text names
// the address and the rule, never whether anything listens there.
type RefusedError struct {
	Addr   string
	Reason string
}

func (e *RefusedError) Error() string {
	return "egress policy refuses a connection to " + e.Addr + ": " + e.Reason
}

// ErrRefused matches every RefusedError with errors.Is.
var ErrRefused = errors.New("egress policy refuses the connection")

func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Check decides about a connection to ap, asked for under host (the name
// given to the dialer; "" or an address when there was none).
func (p *Policy) Check(host string, ap netip.AddrPort) error {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if _, err := netip.ParseAddr(host); err == nil {
		host = ""
	}
	var allow, deny []Rule
	if p != nil {
		allow, deny = p.Allow, p.Deny
	}
	allowed, exact := false, false
	for _, r := range allow {
		m, e := r.matchAddr(ap)
		if !m {
			m, e = r.matchHost(host, ap.Port())
		}
		allowed, exact = allowed || m, exact || e
	}
	for _, r := range deny {
		if m, _ := r.matchAddr(ap); m && !exact {
			return &RefusedError{Addr: ap.String(), Reason: "a control-plane or runtime port, open only to an allow-list entry naming this address and port"}
		}
	}
	if allowed || !ClosedByDefault(ap.Addr()) {
		return nil
	}
	return &RefusedError{Addr: ap.String(), Reason: "loopback, link-local, private and other local addresses are closed unless the instance's egress allow-list opens them"}
}

type hostKey struct{}

// Dialer returns a dialer whose every connection is checked: base's
// settings with the policy's Control hook, and a DialContext that lets
// the hook see the host name asked for.
func (p *Policy) Dialer(base *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := *base
	d.Control = nil
	d.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &RefusedError{Addr: address, Reason: "not an IP address and port"}
		}
		host, _ := ctx.Value(hostKey{}).(string)
		return p.Check(host, ap)
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			ctx = context.WithValue(ctx, hostKey{}, host)
		}
		conn, err := d.DialContext(ctx, network, addr)
		var re *RefusedError
		if errors.As(err, &re) {
			// Not net.OpError's text: it would add the local address.
			return nil, re
		}
		return conn, err
	}
}
