package server_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// A watch held at one replica sees a runtime created and then deleted
// through another: the store's change feed (PostgreSQL NOTIFY) wakes it,
// its poll stays the guarantee. The delays measured are logged.
func TestWatchSeesChangesMadeAtAnotherReplica(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	opts := servertest.Options{Store: dsn, Env: []string{"SLUICE_MASTER_KEY=" + sharedKey},
		Args: []string{"--runtime-backend", "none", "--public-url", "http://sluice.test"}}
	a, b := servertest.Start(t, opts), servertest.Start(t, opts)
	b.Creds = a.Creds
	adminA, adminB := a.Admin(t), b.Admin(t)

	req, _ := http.NewRequest("GET", b.URL+"/api/v1/integration-runtimes?watch=true", nil)
	req.Header.Set("Authorization", "Bearer "+adminB.Token)
	req.Header.Set("X-IBM-Client-Id", adminB.ClientID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("watch at B: %v %v", err, resp)
	}
	defer resp.Body.Close()
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "event: ") {
				events <- strings.TrimPrefix(line, "event: ")
			}
		}
		close(events)
	}()
	// await returns the time from start to the event.
	await := func(want string, start time.Time) time.Duration {
		t.Helper()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("the watch ended before %q", want)
				}
				if ev == want {
					return time.Since(start)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no %q event at B", want)
			}
		}
	}
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("rt-%d", i)
		rt := map[string]any{"metadata": map[string]any{"name": name}, "spec": map[string]any{"barURL": []string{"https://127.0.0.1:1/none.bar"}, "replicas": 0}}
		start := time.Now()
		if code, body := adminA.Do("PUT", "/api/v1/integration-runtimes/"+name, rt); code != 201 {
			t.Fatalf("PUT at A: %d %s", code, body)
		}
		put := time.Since(start)
		seen := await("update", start)
		start = time.Now()
		if code, body := adminA.Do("DELETE", "/api/v1/integration-runtimes/"+name, nil); code != 204 {
			t.Fatalf("DELETE at A: %d %s", code, body)
		}
		del := time.Since(start)
		gone := await("deleted", start)
		t.Logf("round %d: PUT at A took %v, B's watch had it %v after the PUT began; DELETE %v, seen %v after it began", i, put.Round(time.Millisecond),
			seen.Round(time.Millisecond), del.Round(time.Millisecond), gone.Round(time.Millisecond))
	}
}
