package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-dev/sluice/internal/iam"
)

// A whole list whose later page fails cannot pass for a shorter list: the
// client has the first page's items but the answer breaks off without its
// end (no closing bracket, no clean end of body), and the failure is
// logged. An error of the first page is an error answer, as for a page.
func TestAWholeListCutShortBreaksTheAnswer(t *testing.T) {
	var logs bytes.Buffer
	a := &API{Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	var failAt atomic.Int32 // the call of list that fails
	failAt.Store(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls := 0
		answerList(a, w, r, "things", func(req iam.ListRequest) (iam.ListPage[string], error) {
			calls++
			if calls == int(failAt.Load()) {
				return iam.ListPage[string]{}, errors.New("store: the disk went away")
			}
			// Pages of 300 items, long enough for the first to be sent
			// before the second is read.
			page := iam.ListPage[string]{Continue: fmt.Sprintf("after-%d", calls)}
			for i := range 300 {
				page.Items = append(page.Items, fmt.Sprintf("thing-%d-%03d-%s", calls, i, strings.Repeat("x", 40)))
			}
			return page, nil
		}, func(s string) map[string]string { return map[string]string{"name": s} })
	}))
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, readErr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || readErr == nil {
		t.Fatalf("status %d, read error %v: the broken answer ended cleanly", resp.StatusCode, readErr)
	}
	if !bytes.Contains(body, []byte(`"thing-1-299-`)) || bytes.Contains(body, []byte("thing-2-")) {
		t.Fatalf("the client did not get exactly the first page (%d bytes)", len(body))
	}
	var whole struct{ Things []map[string]string }
	if err := json.Unmarshal(body, &whole); err == nil {
		t.Fatalf("the cut answer decodes as a list of %d", len(whole.Things))
	}
	if !strings.Contains(logs.String(), `"msg":"list cut short"`) || !strings.Contains(logs.String(), "the disk went away") {
		t.Errorf("the failure is not logged: %s", logs.String())
	}

	failAt.Store(1)
	resp, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || bytes.Contains(body, []byte("thing")) {
		t.Errorf("first page failing: %d %s", resp.StatusCode, body)
	}
}
