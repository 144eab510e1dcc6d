package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// CLI commands reuse one token, cached 0600 next to the config file, so a
// script of many commands writes one token.issue audit event, not one
// per command; a stale, refused or exposed cache costs one exchange.
func TestCLIReusesItsCachedToken(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none"}})
	cli := newCLI(t)
	cli.ok("login", "--from-file", filepath.Join(srv.DataDir, "initial-credentials.json"))
	admin := srv.Admin(t)
	issued := func() int {
		t.Helper()
		code, body := admin.Do("GET", "/api/v1/audit?limit=10000", nil)
		if code != 200 {
			t.Fatalf("audit: %d %s", code, body)
		}
		var out struct {
			AuditEvents []struct{ Action, Actor string }
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range out.AuditEvents {
			if e.Action == "token.issue" {
				n++
			}
		}
		return n
	}
	start := issued()
	for range 4 {
		cli.ok("configurations", "list")
	}
	if got := issued() - start; got != 1 {
		t.Fatalf("four commands issued %d tokens, want 1", got)
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(cli.config), "tokens", "token-*.json"))
	if len(files) != 1 {
		t.Fatalf("token cache files: %v", files)
	}
	cache := files[0]
	for path, want := range map[string]os.FileMode{cache: 0o600, filepath.Dir(cache): 0o700} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %#o (%v)", path, fi.Mode().Perm(), want, err)
		}
	}
	b, _ := os.ReadFile(cache)
	if strings.Contains(string(b), srv.Creds.APIKey) || strings.Contains(string(b), srv.Creds.ClientSecret) {
		t.Error("the token cache holds a credential")
	}

	rewrite := func(edit func(map[string]any)) {
		t.Helper()
		var m map[string]any
		b, _ := os.ReadFile(cache)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ = json.Marshal(m)
		if err := os.WriteFile(cache, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		edit func(map[string]any)
		mode os.FileMode
	}{
		// Past its expiry (a date long gone whatever day the test runs).
		{"expired", func(m map[string]any) { m["expiry"] = "2001-01-01T00:00:00Z" }, 0o600},
		// Still "valid" by its expiry, but the server refuses it: the
		// command heals with one exchange and the cache is replaced.
		{"refused", func(m map[string]any) { m["accessToken"] = "not-a-token"; m["expiry"] = "2999-01-01T00:00:00Z" }, 0o600},
		// Readable by others: not trusted.
		{"exposed", func(map[string]any) {}, 0o644},
	} {
		rewrite(c.edit)
		if err := os.Chmod(cache, c.mode); err != nil {
			t.Fatal(err)
		}
		before := issued()
		cli.ok("configurations", "list")
		cli.ok("configurations", "list")
		if got := issued() - before; got != 1 {
			t.Errorf("%s cache: two commands issued %d tokens, want 1", c.name, got)
		}
		if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s cache: after the commands the file is %v (%v)", c.name, fi.Mode(), err)
		}
	}

	// Other credentials (the environment's API key) never use this token.
	before := issued()
	r := cli.run("", []string{"SLUICE_API_KEY=" + srv.Creds.APIKey + "x"}, "configurations", "list")
	if r.code == 0 {
		t.Fatalf("a wrong API key in the environment worked off the cached token: %s", r.stdout)
	}
	if issued() != before {
		t.Errorf("a refused exchange issued a token")
	}
}
