package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
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

// 30 parallel wrong guesses for one user: five are checked (401), the rest
// refused at once (429 with Retry-After), and the lockout then holds for the
// right password too.
func TestLoginLockoutHoldsUnderParallelGuesses(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none"}})
	c := srv.Creds
	const n = 30
	browsers := make([]*browser, n)
	tokens := make([]string, n)
	for i := range browsers {
		browsers[i] = newBrowser(t, srv.URL)
		tokens[i] = csrf(t, browsers[i].get("/login"))
	}
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range browsers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest("POST", srv.URL+"/login", strings.NewReader(url.Values{"csrf": {tokens[i]}, "instance": {c.InstanceID},
				"username": {c.Username}, "password": {fmt.Sprint("guess-", i)}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := browsers[i].c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}(i)
	}
	wg.Wait()
	checked := 0
	for _, code := range codes {
		switch code {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("a guess answered %d", code)
		}
	}
	if checked != 5 {
		t.Fatalf("%d of %d parallel guesses were checked, want 5: %v", checked, n, codes)
	}
	if p := newBrowser(t, srv.URL).login(c.InstanceID, c.Username, c.Password); p.code != http.StatusTooManyRequests {
		t.Fatalf("the right password during the lockout: %d", p.code)
	}
}

// A session opened at one replica works at every other (no sticky load
// balancer needed), and a logout at any replica ends the session at all
// of them. On SQLite the second replica is the same process restarted on
// the same data: a restart logs nobody out.
func TestSessionsLiveInTheStore(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			mk, _ := secret.NewMasterKey()
			opts := servertest.Options{Store: storetest.DSN(t, kind), Env: []string{"SLUICE_MASTER_KEY=" + mk.Encode().Reveal()},
				Args: []string{"--runtime-backend", "none", "--public-url", "http://sluice.test"}}
			a := servertest.Start(t, opts)
			br := newBrowser(t, a.URL)
			if p := br.login(a.Creds.InstanceID, a.Creds.Username, a.Creds.Password); p.code != http.StatusSeeOther {
				t.Fatalf("login at A: %d %s", p.code, p.body)
			}
			b := a
			if kind == "postgres" {
				b = servertest.Start(t, opts)
			} else {
				if err := a.Stop(); err != nil {
					t.Fatal(err)
				}
				a.Restart()
			}
			br.base = b.URL
			p := br.get("/runtimes")
			if p.code != 200 {
				t.Fatalf("the session from A at B: GET /runtimes = %d", p.code)
			}
			logout := br.post("/logout", url.Values{"csrf": {csrf(t, p)}})
			if logout.code != http.StatusSeeOther {
				t.Fatalf("logout at B = %d %s", logout.code, logout.body)
			}
			if kind == "postgres" {
				br.base = a.URL
			}
			if p := br.get("/runtimes"); p.code != http.StatusSeeOther || !strings.HasPrefix(p.location, "/login") {
				t.Fatalf("after logout at B, the session still works: %d", p.code)
			}
		})
	}
}
