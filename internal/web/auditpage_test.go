package web_test

import (
	"html"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

var olderLink = regexp.MustCompile(`<a href="/settings/audit(\?[^"]*)" id="audit-older"`)

// The audit page stops at 500 events no more: it links to the next older
// page, and following the links reaches the first event ever recorded.
func TestAuditPageLinksToOlderPages(t *testing.T) {
	// Failed calls draw on the per-source limit: off, like the others.
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none", "--rate-limit-client", "off",
		"--rate-limit-instance", "off", "--rate-limit-source", "off"}})
	c := srv.Creds
	// 640 refused exchanges, each audited, on top of the first start's events.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 80 {
				if resp, _, err := servertest.Exchange(srv.URL, c.ClientID, c.ClientSecret, c.InstanceID, "sk-wrong"); err != nil || resp.StatusCode != 401 {
					t.Errorf("bad exchange: %v %v", resp, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b := newBrowser(t, srv.URL)
	if p := b.login(c.InstanceID, c.Username, c.Password); p.code != 303 {
		t.Fatalf("login: %d", p.code)
	}
	rows, pages, path := 0, 0, "/settings/audit"
	var last string
	for {
		p := b.get(path)
		if p.code != 200 {
			t.Fatalf("GET %s: %d\n%s", path, p.code, p.body)
		}
		pages++
		if pages == 1 && !strings.Contains(p.body, `Events are kept for 90 days`) {
			t.Errorf("the audit page does not state the retention in force (the default 90 days)")
		}
		n := strings.Count(p.body, `<td data-label="When" class="when">`)
		if n > 500 {
			t.Fatalf("page %d shows %d events", pages, n)
		}
		rows += n
		last = p.body
		m := olderLink.FindStringSubmatch(p.body)
		if m == nil {
			break
		}
		if pages > 1 && !strings.Contains(p.body, `id="audit-newest"`) {
			t.Errorf("page %d has no link back to the newest events", pages)
		}
		path = "/settings/audit" + html.UnescapeString(m[1])
	}
	if pages != 2 {
		t.Errorf("%d pages, want 2 for %d events", pages, rows)
	}
	if rows < 640 {
		t.Errorf("the pages showed %d events, want at least 640", rows)
	}
	// The oldest page ends with the first start's instance creation.
	if !strings.Contains(last, "instance.create") {
		t.Errorf("the last page does not reach the first event")
	}
	// A stale or forged link says so, with a 400, not an error page.
	if p := b.get("/settings/audit?continue=forged"); p.code != 400 || !strings.Contains(p.body, "out of date") {
		t.Errorf("forged continue: %d", p.code)
	}
	// The filters go with the links: an action filter pages too.
	p := b.get("/settings/audit?action=token.refuse")
	m := olderLink.FindStringSubmatch(p.body)
	if m == nil || !strings.Contains(html.UnescapeString(m[1]), "action=token.refuse") {
		t.Fatalf("the filtered page's older link does not keep the filter: %v", m)
	}
	if strings.Contains(p.body, "instance.create") {
		t.Errorf("the filtered page shows other actions")
	}
	// A whole action name is the store's filter; a part is matched too.
	for _, c := range []struct {
		action string
		want   int
	}{{"instance.create", 1}, {"instance.creat", 0}, {"create", 1}, {"nosuch.verb", 0}} {
		p := b.get("/settings/audit?action=" + c.action)
		rows := regexp.MustCompile(`<td data-label="Action">([^<]*)</td>`).FindAllStringSubmatch(p.body, -1)
		n := 0
		for _, r := range rows {
			if !strings.Contains(r[1], strings.TrimSuffix(c.action, ".")) {
				t.Errorf("action=%s shows %s", c.action, r[1])
			}
			if r[1] == "instance.create" {
				n++
			}
		}
		if p.code != 200 || n != c.want || olderLink.MatchString(p.body) {
			t.Errorf("action=%s: %d, %d instance.create rows (want %d), an older link: %v", c.action, p.code, n, c.want, olderLink.MatchString(p.body))
		}
	}
}
