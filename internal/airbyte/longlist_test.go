package airbyte_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// Airbyte's list has no pages, so a caller with more applications than a
// store page (500) gets all of them, each once, in both wires' lists —
// written a page at a time — and only its own: the instance's other
// credentials are not in it.
func TestLongApplicationListsAreWhole(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--rate-limit-client", "off", "--rate-limit-instance", "off", "--rate-limit-source", "off"}})
	admin := srv.Admin(t)
	const n = 620 // two store pages
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 6 {
				if code, body := admin.Do("POST", "/api/public/v1/applications", map[string]string{"name": fmt.Sprintf("app%04d", i)}); code != 200 {
					t.Errorf("create app%04d: %d %s", i, code, body)
				}
			}
		}()
	}
	wg.Wait()
	if code, body := admin.Do("PUT", "/api/v1/credentials/ci", map[string]any{"metadata": map[string]string{"name": "ci"}}); code != 201 {
		t.Fatalf("an instance credential: %d %s", code, body)
	}
	for _, call := range []struct{ method, path string }{{"GET", "/api/public/v1/applications"}, {"POST", "/api/v1/applications/list"}} {
		code, body := admin.Do(call.method, call.path, nil)
		var list struct {
			Applications []struct{ Name, ClientSecret string }
		}
		if err := json.Unmarshal(body, &list); code != 200 || err != nil {
			t.Fatalf("%s %s: %d %v", call.method, call.path, code, err)
		}
		seen := map[string]int{}
		for _, a := range list.Applications {
			seen[a.Name]++
			if a.ClientSecret != "" {
				t.Fatalf("%s lists a secret", call.path)
			}
		}
		for i := range n {
			if k := seen[fmt.Sprintf("app%04d", i)]; k != 1 {
				t.Errorf("%s: app%04d listed %d times", call.path, i, k)
			}
		}
		if len(list.Applications) != n {
			t.Errorf("%s: %d applications, want %d (the credential ci is the instance's, not the caller's)", call.path, len(list.Applications), n)
		}
	}
}
