package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// Setting a user's password, lowering their role or deleting them ends
// their dashboard sessions at once — also when the change goes through
// another replica than the one holding the session (PostgreSQL run: two
// control planes on one store; the session lives in replica A's memory,
// the change is made at replica B).
func TestAccountChangesEndSessions(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			mk, _ := secret.NewMasterKey()
			opts := servertest.Options{Store: storetest.DSN(t, kind), Env: []string{"SLUICE_MASTER_KEY=" + mk.Encode().Reveal()},
				Args: []string{"--runtime-backend", "none", "--public-url", "http://sluice.test"}}
			a := servertest.Start(t, opts)
			b := a
			if kind == "postgres" {
				b = servertest.Start(t, opts)
				b.Creds = a.Creds
			}
			adminB := b.Admin(t)
			user := func(name, role, password string) {
				t.Helper()
				spec := map[string]any{"role": role}
				if password != "" {
					spec["password"] = password
				}
				if code, body := adminB.Do("PUT", "/api/v1/users/"+name, map[string]any{"metadata": map[string]string{"name": name}, "spec": spec}); code/100 != 2 {
					t.Fatalf("PUT user %s: %d %s", name, code, body)
				}
			}
			loggedIn := func(name, password string) *browser {
				t.Helper()
				br := newBrowser(t, a.URL)
				if p := br.login(a.Creds.InstanceID, name, password); p.code != http.StatusSeeOther {
					t.Fatalf("login %s: %d %s", name, p.code, p.body)
				}
				if p := br.get("/runtimes"); p.code != 200 {
					t.Fatalf("%s logged in: GET /runtimes = %d", name, p.code)
				}
				return br
			}
			ended := func(br *browser, why string) {
				t.Helper()
				p := br.get("/runtimes")
				if p.code != http.StatusUnauthorized || !strings.Contains(p.body, "log in again") {
					t.Fatalf("%s: the session still works: %d", why, p.code)
				}
				if p := br.get("/runtimes"); p.code != http.StatusSeeOther {
					t.Fatalf("%s: the ended session came back: %d", why, p.code)
				}
			}
			user("pat", "developer", "first-password-1")
			br := loggedIn("pat", "first-password-1")
			other := loggedIn("pat", "first-password-1")
			user("pat", "developer", "second-password-2")
			ended(br, "password set")
			ended(other, "password set (second session)")

			br = loggedIn("pat", "second-password-2")
			user("pat", "developer", "") // description or same role: the session stays
			if p := br.get("/runtimes"); p.code != 200 {
				t.Fatalf("an update that changes neither password nor role ended the session: %d", p.code)
			}
			user("pat", "viewer", "")
			ended(br, "demoted")

			br = loggedIn("pat", "second-password-2")
			if code, body := adminB.Do("DELETE", "/api/v1/users/pat", nil); code != 204 {
				t.Fatalf("delete: %d %s", code, body)
			}
			ended(br, "deleted")
		})
	}
}
