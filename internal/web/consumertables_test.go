package web_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// The consumers' side of the dashboard pages its long tables like the
// rest: following a table's Next links from its first page shows each
// row once and no page shows more than 100 rows; the consumer apps tree
// shows at most 10 of each level and links to the level's own page.
func TestConsumerAndPublishedTablesPage(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none", "--rate-limit-client", "off",
		"--rate-limit-instance", "off", "--rate-limit-source", "off"}})
	c := srv.Creds
	admin := srv.Admin(t)
	// Each create of n runs on 6 clients at once.
	create := func(n int, call func(i int) (string, string, any)) {
		t.Helper()
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 6 {
					method, path, body := call(i)
					if code, out := admin.Do(method, path, body); code != 201 && code != 200 {
						t.Errorf("%s %s: %d %s", method, path, code, out)
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	named := func(name string) map[string]any { return map[string]any{"metadata": map[string]any{"name": name}} }
	const long = 105 // rows in each long table: more than a page of 100
	create(long, func(i int) (string, string, any) {
		return "POST", "/api/v1/catalogs/sandbox/consumer-orgs", named(fmt.Sprintf("org%03d", i))
	})
	create(long, func(i int) (string, string, any) {
		return "POST", "/api/v1/catalogs/sandbox/consumer-orgs/org000/apps", named(fmt.Sprintf("app%03d", i))
	})
	create(long, func(i int) (string, string, any) {
		return "POST", "/api/v1/catalogs/sandbox/consumer-orgs/org000/apps/app000/credentials", named(fmt.Sprintf("cred%03d", i))
	})
	data, _, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", "hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, srv.URL)
	if p := b.login(c.InstanceID, c.Username, c.Password); p.code != http.StatusSeeOther {
		t.Fatalf("login: %d", p.code)
	}
	if p := b.upload("/bar-files", map[string]string{"csrf": csrf(t, b.get("/bar-files"))}, "hello.bar", data); p.code != http.StatusSeeOther {
		t.Fatalf("upload = %d\n%s", p.code, p.body)
	}
	create(long, func(i int) (string, string, any) {
		return "PUT", fmt.Sprintf("/api/v1/apis/api%03d", i), map[string]any{"metadata": map[string]any{"name": fmt.Sprintf("api%03d", i)},
			"spec": map[string]any{"version": "1.0.0", "barFile": "hello", "basePath": "/hello"}}
	})
	create(long, func(i int) (string, string, any) {
		return "PUT", fmt.Sprintf("/api/v1/plans/plan%03d", i), map[string]any{"metadata": map[string]any{"name": fmt.Sprintf("plan%03d", i)},
			"spec": map[string]any{"apis": []string{"api000"}, "auth": "client-id"}}
	})
	create(long, func(i int) (string, string, any) {
		return "PUT", fmt.Sprintf("/api/v1/subscriptions/sub%03d", i), map[string]any{"metadata": map[string]any{"name": fmt.Sprintf("sub%03d", i)},
			"spec": map[string]any{"plan": "plan000", "app": fmt.Sprintf("sandbox/org000/app%03d", i)}}
	})

	for _, table := range []struct {
		path string
		row  *regexp.Regexp
	}{
		{"/apps/sandbox", regexp.MustCompile(`href="/apps/sandbox/(org\d+)"`)},
		{"/apps/sandbox/org000", regexp.MustCompile(`href="/apps/sandbox/org000/(app\d+)"`)},
		{"/apps/sandbox/org000/app000", regexp.MustCompile(`<td data-label="Name">(cred\d+)</td>`)},
		{"/apis", regexp.MustCompile(`<a href="/apis/(api\d+)">`)},
		{"/plans", regexp.MustCompile(`<td data-label="Name"><a href="/plans/(plan\d+)">`)},
		{"/subscriptions", regexp.MustCompile(`<td data-label="Name">(sub\d+)</td>`)},
	} {
		next := regexp.MustCompile(`<a href="(` + regexp.QuoteMeta(table.path) + `\?[^"]*)" id="page-next"`)
		seen := map[string]int{}
		path, pages := table.path, 0
		for path != "" && pages < 5 {
			p := b.get(path)
			if p.code != 200 {
				t.Fatalf("GET %s: %d\n%s", path, p.code, p.body)
			}
			pages++
			rows := table.row.FindAllStringSubmatch(p.body, -1)
			if len(rows) == 0 || len(rows) > 100 {
				t.Errorf("%s page %d shows %d rows", table.path, pages, len(rows))
			}
			for _, m := range rows {
				seen[m[1]]++
			}
			if pages > 1 && !strings.Contains(p.body, `id="page-first"`) {
				t.Errorf("%s page %d has no link to the first page", table.path, pages)
			}
			path = ""
			if m := next.FindStringSubmatch(p.body); m != nil {
				path = html.UnescapeString(m[1])
			}
		}
		if pages != 2 || len(seen) != long {
			t.Errorf("%s: %d rows in %d pages, want %d in 2", table.path, len(seen), pages, long)
		}
		for name, k := range seen {
			if k != 1 {
				t.Errorf("%s: %s shown %d times", table.path, name, k)
			}
		}
		if p := b.get(table.path + "?continue=forged"); p.code != 400 {
			t.Errorf("%s with a forged page link: %d", table.path, p.code)
		}
	}

	tree := b.get("/apps")
	orgs := regexp.MustCompile(`<td data-label="Consumer org"><a href="/apps/sandbox/(org\d+)">`).FindAllStringSubmatch(tree.body, -1)
	shown := map[string]bool{}
	for _, m := range orgs {
		shown[m[1]] = true
	}
	apps := regexp.MustCompile(`href="/apps/sandbox/org000/(app\d+)"`).FindAllString(tree.body, -1)
	if tree.code != 200 || len(shown) != 10 || len(apps) != 10 {
		t.Errorf("the tree shows %d consumer orgs and %d apps of org000, want 10 and 10", len(shown), len(apps))
	}
	for _, link := range []string{`id="more-orgs-sandbox"`, `id="more-apps-sandbox-org000"`} {
		if !strings.Contains(tree.body, link) {
			t.Errorf("the tree has no %s", link)
		}
	}
	if strings.Contains(tree.body, `id="more-apps-sandbox-org001"`) {
		t.Errorf("org001, with no apps, links to more")
	}
}
