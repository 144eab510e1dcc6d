package api_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

type auditList struct {
	AuditEvents []struct{ ID, Object, Action string }
	Metadata    struct {
		Continue         string
		RetentionSeconds *int64
	}
}

// The audit pages with keyset continue tokens: every event is reached
// once, in order, while new events keep arriving between pages.
func TestAuditPagesWithContinueTokens(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	for i := range 23 {
		if i%3 == 0 {
			e.clock.Add(time.Second) // several events share a millisecond: the id breaks the tie
		}
		if r := admin.call("PUT", fmt.Sprintf("/api/v1/service-ids/s%d", i), obj(fmt.Sprintf("s%d", i), map[string]any{"role": "viewer"})); r.code != 201 {
			t.Fatalf("create s%d: %d %s", i, r.code, r.body)
		}
	}
	var all auditList
	admin.call("GET", "/api/v1/audit", nil).json(t, &all)
	if all.Metadata.Continue != "" {
		t.Fatalf("one page holds everything, yet a continue token came: %+v", all.Metadata)
	}

	var paged []string
	cont, pages := "", 0
	for {
		path := "/api/v1/audit?limit=7"
		if cont != "" {
			path += "&continue=" + url.QueryEscape(cont)
		}
		var pg auditList
		r := admin.call("GET", path, nil)
		if r.code != 200 {
			t.Fatalf("page %d: %d %s", pages, r.code, r.body)
		}
		r.json(t, &pg)
		pages++
		if len(pg.AuditEvents) > 7 {
			t.Fatalf("page %d has %d events", pages, len(pg.AuditEvents))
		}
		for _, ev := range pg.AuditEvents {
			paged = append(paged, ev.ID)
		}
		if pages == 1 {
			// New events arrive while the reader pages: they are newer
			// than every page still to come, so they shift nothing.
			e.clock.Add(time.Second)
			for i := range 3 {
				admin.call("PUT", fmt.Sprintf("/api/v1/service-ids/late%d", i), obj(fmt.Sprintf("late%d", i), map[string]any{"role": "viewer"}))
			}
		}
		if pg.Metadata.Continue == "" {
			break
		}
		cont = pg.Metadata.Continue
	}
	if len(paged) != len(all.AuditEvents) {
		t.Fatalf("paging saw %d events, one list %d", len(paged), len(all.AuditEvents))
	}
	for i, ev := range all.AuditEvents {
		if paged[i] != ev.ID {
			t.Fatalf("event %d: paged %s, listed %s (%s)", i, paged[i], ev.ID, ev.Object)
		}
	}
	if want := (len(all.AuditEvents) + 6) / 7; pages != want {
		t.Errorf("%d pages for %d events at 7 a page, want %d", pages, len(all.AuditEvents), want)
	}

	// A token of another filter, a malformed one, a limit out of range:
	// 400 naming the parameter.
	var first auditList
	admin.call("GET", "/api/v1/audit?limit=2&actor="+url.QueryEscape("user:admin"), nil).json(t, &first)
	if first.Metadata.Continue == "" {
		t.Fatal("no continue token for the actor's first page")
	}
	tok := url.QueryEscape(first.Metadata.Continue)
	for _, path := range []string{
		"/api/v1/audit?limit=2&continue=" + tok,                  // the same token without its filter
		"/api/v1/audit?limit=2&actor=user:other&continue=" + tok, // another actor
		"/api/v1/audit?continue=not-a-token",                     // garbage
		"/api/v1/audit?continue=" + strings.Repeat("A", 600),     // too long
		"/api/v1/audit?continue=eyJ0IjoxLCJpIjoiIiwiZiI6IiJ9",    // decodes, names nothing
		"/api/v1/audit?limit=10001",                              // over the maximum
	} {
		r := admin.call("GET", path, nil)
		if r.code != 400 || !(strings.Contains(string(r.body), "continue") || strings.Contains(string(r.body), "limit")) {
			t.Errorf("GET %s: %d %s, want 400 naming the parameter", path, r.code, r.body)
		}
	}
	// The right filter with the token goes on.
	if r := admin.call("GET", "/api/v1/audit?limit=2&actor="+url.QueryEscape("user:admin")+"&continue="+tok, nil); r.code != 200 {
		t.Errorf("the actor's second page: %d %s", r.code, r.body)
	}
}

// The audit filters by action and by object, pages within a filter, and
// refuses a query parameter it does not know (a misspelt filter must not
// answer everything) with 400 naming it.
func TestAuditFiltersByActionAndObject(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()
	for i := range 5 {
		if r := admin.call("PUT", fmt.Sprintf("/api/v1/service-ids/s%d", i), obj(fmt.Sprintf("s%d", i), map[string]any{"role": "viewer"})); r.code != 201 {
			t.Fatalf("create s%d: %d %s", i, r.code, r.body)
		}
	}
	if r := admin.call("DELETE", "/api/v1/service-ids/s3", nil); r.code/100 != 2 {
		t.Fatalf("delete s3: %d %s", r.code, r.body)
	}
	var all auditList
	admin.call("GET", "/api/v1/audit", nil).json(t, &all)
	var del auditList
	if r := admin.call("GET", "/api/v1/audit?action=serviceId.delete", nil); r.code != 200 {
		t.Fatalf("action filter: %d %s", r.code, r.body)
	} else {
		r.json(t, &del)
	}
	if len(del.AuditEvents) != 1 || del.AuditEvents[0].Action != "serviceId.delete" {
		t.Fatalf("action=serviceId.delete lists %+v; want the one delete", del.AuditEvents)
	}
	object := del.AuditEvents[0].Object
	var byObject, want []string
	for _, ev := range all.AuditEvents {
		if ev.Object == object {
			want = append(want, ev.ID)
		}
	}
	cont := ""
	for {
		var pg auditList
		path := "/api/v1/audit?limit=1&object=" + url.QueryEscape(object)
		if cont != "" {
			path += "&continue=" + url.QueryEscape(cont)
		}
		admin.call("GET", path, nil).json(t, &pg)
		for _, ev := range pg.AuditEvents {
			byObject = append(byObject, ev.ID)
		}
		if pg.Metadata.Continue == "" {
			break
		}
		cont = pg.Metadata.Continue
	}
	if len(want) < 2 || strings.Join(byObject, ",") != strings.Join(want, ",") {
		t.Fatalf("object=%s pages to %v; want %v (its create and delete)", object, byObject, want)
	}
	for _, p := range []string{"actr=user:admin", "sort=time", "offset=10"} {
		name := strings.SplitN(p, "=", 2)[0]
		if r := admin.call("GET", "/api/v1/audit?"+p, nil); r.code != 400 || !strings.Contains(string(r.body), name) {
			t.Errorf("GET /api/v1/audit?%s: %d %s, want 400 naming %s", p, r.code, r.body, name)
		}
	}
}
