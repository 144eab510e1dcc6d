package runtime_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// TestAdminListenerRefusesOtherProcesses plays another process on the
// host (another tenant's flow, say) that found a runtime's admin port: it
// must not read or switch traces, nor reach Go's profiles, without the
// runtime's admin credential; the control plane's credential still works.
func TestAdminListenerRefusesOtherProcesses(t *testing.T) {
	hello := buildBAR(t, "../../examples/hello")
	p := startRuntime(t, "--bar", hello)

	// The test's own client adds the credential to admin requests; a
	// stranger's requests go out bare or with a guess.
	stranger := func(method, path, auth string) answer {
		t.Helper()
		req, err := http.NewRequest(method, p.adminURL(path), nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return answer{status: resp.StatusCode, header: resp.Header, body: b.Bytes()}
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/trace/user/download"},
		{"GET", "/trace/service/download?format=zip"},
		{"GET", "/trace/user/stream"},
		{"POST", "/trace/user/start"},
		{"POST", "/trace/service/stop"},
		{"DELETE", "/trace/service"},
		{"GET", "/trace"},
		{"GET", "/flows"},
		{"GET", "/metrics"},
		{"GET", "/debug/pprof/"},
		{"GET", "/debug/pprof/cmdline"},
	} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + adminToken + "x", "Basic " + adminToken} {
			a := stranger(c.method, c.path, auth)
			if a.status != http.StatusUnauthorized && !(strings.HasPrefix(c.path, "/debug/") && a.status == http.StatusNotFound) {
				t.Errorf("%s %s with %q: %d %s", c.method, c.path, auth, a.status, a.body)
			}
			if bytes.Contains(a.body, []byte("flows/hello.yaml")) || bytes.Contains(a.body, []byte(`"enabled"`)) {
				t.Errorf("%s %s with %q answered runtime data: %s", c.method, c.path, auth, a.body)
			}
		}
	}
	// None of the refused calls switched the trace on.
	if a := get(t, p.adminURL("/trace/user")); a.status != 200 || !bytes.Contains(a.body, []byte(`"enabled": false`)) {
		t.Errorf("user trace after refused starts: %d %s", a.status, a.body)
	}
	// Probes stay open: they reveal nothing.
	for _, path := range []string{"/healthz", "/readyz"} {
		if a := stranger("GET", path, ""); a.status != 200 {
			t.Errorf("%s without credential: %d", path, a.status)
		}
	}
	// With the credential: traces work, profiles are still not there.
	if a := do(t, "POST", p.adminURL("/trace/user/start"), nil); a.status != 200 {
		t.Errorf("start with credential: %d %s", a.status, a.body)
	}
	if a := get(t, p.adminURL("/debug/pprof/")); a.status != http.StatusNotFound {
		t.Errorf("pprof without --admin-pprof: %d", a.status)
	}

	// --admin-pprof serves profiles, still behind the credential.
	q := startRuntime(t, "--bar", hello, "--admin-pprof")
	if a := get(t, q.adminURL("/debug/pprof/cmdline")); a.status != 200 {
		t.Errorf("pprof with --admin-pprof and credential: %d", a.status)
	}
	adminHosts.Delete(q.admin)
	if a := get(t, q.adminURL("/debug/pprof/cmdline")); a.status != http.StatusUnauthorized {
		t.Errorf("pprof with --admin-pprof, no credential: %d", a.status)
	}
}

// TestAdminListenerWithoutCredential: a runtime started without
// --admin-token-file serves its probes and nothing else.
func TestAdminListenerWithoutCredential(t *testing.T) {
	p := startRuntime(t, "--bar", buildBAR(t, "../../examples/hello"), "--admin-token-file", "")
	if a := get(t, p.adminURL("/readyz")); a.status != 200 {
		t.Errorf("readyz: %d", a.status)
	}
	a := get(t, p.adminURL("/trace/user/download"))
	if a.status != http.StatusForbidden || !bytes.Contains(a.body, []byte("--admin-token-file")) {
		t.Errorf("trace download without a credential configured: %d %s", a.status, a.body)
	}
}
