package web_test

import (
	"fmt"
	"html"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

var (
	nextPageLink = regexp.MustCompile(`<a href="(/configurations\?[^"]*)" id="page-next"`)
	configRow    = regexp.MustCompile(`<td data-label="Name">(pg\d+)</td>`)
)

// Long tables show a page of rows and link the next page with the API's
// continue token: following the links shows every configuration once,
// also when some are created and deleted between the pages, and a link
// that is not the table's own is refused.
func TestLongTablesLinkToTheirNextPage(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none", "--rate-limit-client", "off",
		"--rate-limit-instance", "off", "--rate-limit-source", "off"}})
	c := srv.Creds
	admin := srv.Admin(t)
	put := func(name string) {
		body := map[string]any{"metadata": map[string]string{"name": name}, "spec": map[string]any{"type": "serverconf", "data": "RGVmYXVsdHM6IHt9Cg=="}}
		if code, out := admin.Do("PUT", "/api/v1/configurations/"+name, body); code != 201 {
			t.Errorf("create %s: %d %s", name, code, out)
		}
	}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 230; i += 6 {
				put(fmt.Sprintf("pg%03d", i*2))
			}
		}()
	}
	wg.Wait()
	b := newBrowser(t, srv.URL)
	if p := b.login(c.InstanceID, c.Username, c.Password); p.code != 303 {
		t.Fatalf("login: %d", p.code)
	}
	seen := map[string]int{}
	gone := map[string]bool{}
	path, pages := "/configurations", 0
	for {
		p := b.get(path)
		if p.code != 200 {
			t.Fatalf("GET %s: %d\n%s", path, p.code, p.body)
		}
		pages++
		rows := configRow.FindAllStringSubmatch(p.body, -1)
		if len(rows) > 100 {
			t.Fatalf("page %d shows %d rows", pages, len(rows))
		}
		for _, m := range rows {
			seen[m[1]]++
		}
		if pages > 1 && !strings.Contains(p.body, `id="page-first"`) {
			t.Errorf("page %d has no link to the first page", pages)
		}
		m := nextPageLink.FindStringSubmatch(p.body)
		if m == nil {
			break
		}
		// Between pages, rows go and come on both sides of the position.
		for _, n := range []string{fmt.Sprintf("pg%03d", pages*2), fmt.Sprintf("pg%03d", 458-pages*2)} {
			if code, _ := admin.Do("DELETE", "/api/v1/configurations/"+n, nil); code == 204 {
				gone[n] = true
			}
		}
		put(fmt.Sprintf("pg%03d", pages*2+1))
		put(fmt.Sprintf("pg%03d", 457-pages*2))
		path = html.UnescapeString(m[1])
	}
	if pages < 3 {
		t.Errorf("230 configurations in %d pages, want 3", pages)
	}
	for i := 0; i < 230; i++ {
		n := fmt.Sprintf("pg%03d", i*2)
		if !gone[n] && seen[n] != 1 {
			t.Errorf("%s existed throughout, shown %d times", n, seen[n])
		}
	}
	for n, k := range seen {
		if k > 1 {
			t.Errorf("%s shown %d times", n, k)
		}
	}
	if p := b.get("/configurations?continue=forged"); p.code != 400 {
		t.Errorf("a forged page link: %d", p.code)
	}

	// A page of two tables pages each with a token of its own.
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 105; i += 6 {
				name := fmt.Sprintf("sid%03d", i)
				body := map[string]any{"metadata": map[string]string{"name": name}, "spec": map[string]string{"role": "viewer"}}
				if code, out := admin.Do("PUT", "/api/v1/service-ids/"+name, body); code != 201 {
					t.Errorf("create %s: %d %s", name, code, out)
				}
			}
		}()
	}
	wg.Wait()
	sidRow := regexp.MustCompile(`action="/settings/identities/service-ids/(sid\d+)/delete"`)
	sidNext := regexp.MustCompile(`<a href="(/settings/identities\?[^"]*)" id="service-ids-page-next"`)
	first := b.get("/settings/identities")
	m := sidNext.FindStringSubmatch(first.body)
	if first.code != 200 || m == nil || strings.Contains(first.body, `id="users-page-next"`) {
		t.Fatalf("identities page: %d, service IDs' next link %v, a users' next link: %v", first.code, m, strings.Contains(first.body, `id="users-page-next"`))
	}
	second := b.get(html.UnescapeString(m[1]))
	shown := map[string]bool{}
	for _, p := range []string{first.body, second.body} {
		for _, r := range sidRow.FindAllStringSubmatch(p, -1) {
			if shown[r[1]] {
				t.Errorf("%s on both pages", r[1])
			}
			shown[r[1]] = true
		}
	}
	if len(shown) != 105 || !strings.Contains(second.body, `id="service-ids-page-first"`) || sidNext.MatchString(second.body) {
		t.Errorf("two pages of service IDs show %d of 105 (first link %v, a third page %v)", len(shown),
			strings.Contains(second.body, `id="service-ids-page-first"`), sidNext.MatchString(second.body))
	}
}
