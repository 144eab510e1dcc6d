package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// Three control planes on one PostgreSQL, clients spread round-robin, a mix
// of writes and token exchanges for 20 s, and one replica killed (SIGKILL)
// half-way with writes in flight: every acknowledged write is there
// afterwards, no request failed except on the killed replica, and each of
// those succeeded when the client tried the next replica.
func TestThreeReplicasSurviveTheKillOfOne(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s of load")
	}
	dsn := storetest.DSN(t, "postgres")
	opts := servertest.Options{Store: dsn, Env: []string{"SLUICE_MASTER_KEY=" + sharedKey},
		Args: []string{"--runtime-backend", "none", "--public-url", "http://sluice.test",
			"--rate-limit-client", "off", "--rate-limit-instance", "off", "--rate-limit-source", "off"}}
	replicas := []*servertest.Server{servertest.Start(t, opts), servertest.Start(t, opts), servertest.Start(t, opts)}
	creds := replicas[0].Creds
	token := replicas[0].Admin(t).Token
	victim := 2
	var killed atomic.Bool
	httpc := &http.Client{Timeout: 30 * time.Second}

	call := func(r int, method, path string, body any, exchange bool) (int, error) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, replicas[r].URL+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-IBM-Client-Id", creds.ClientID)
		if exchange {
			req.Header.Set("X-IBM-Client-Secret", creds.ClientSecret)
			req.Header.Set("x-ibm-instance-id", creds.InstanceID)
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}

	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		failures []string
		retried  atomic.Int64
		done     atomic.Int64
	)
	deadline := time.Now().Add(20 * time.Second)
	killAt := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				name := fmt.Sprintf("svc-%d-%04d", w, i)
				write := i%2 == 0
				// Round-robin, and on to the next replica when one fails.
				for try := 0; try < len(replicas); try++ {
					r := (w + i + try) % len(replicas)
					var code int
					var err error
					if write {
						code, err = call(r, "PUT", "/api/v1/service-ids/"+name, map[string]any{"metadata": map[string]string{"name": name},
							"spec": map[string]string{"role": "viewer"}}, false)
					} else {
						code, err = call(r, "POST", "/api/v1/tokens", map[string]string{"apiKey": creds.APIKey}, true)
					}
					if err == nil && code/100 == 2 {
						if write {
							mu.Lock()
							acked[name] = true
							mu.Unlock()
						}
						done.Add(1)
						break
					}
					if r == victim && killed.Load() {
						retried.Add(1)
						continue // the killed replica's connection: the next one serves it
					}
					mu.Lock()
					failures = append(failures, fmt.Sprintf("replica %d: %s %s: %d %v", r, map[bool]string{true: "PUT", false: "token"}[write], name, code, err))
					mu.Unlock()
					break
				}
			}
		}(w)
	}
	time.Sleep(time.Until(killAt))
	killed.Store(true)
	replicas[victim].Kill()
	wg.Wait()

	if len(failures) > 0 {
		t.Fatalf("%d requests failed at replicas that were not killed, e.g. %v", len(failures), failures[:min(5, len(failures))])
	}
	if retried.Load() == 0 {
		t.Fatal("no request met the killed replica: the kill proved nothing")
	}
	// Every acknowledged write is there, read through a survivor.
	req, _ := http.NewRequest("GET", replicas[0].URL+"/api/v1/service-ids", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-IBM-Client-Id", creds.ClientID)
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		ServiceIDs []struct{ Metadata struct{ Name string } } `json:"serviceIds"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, it := range list.ServiceIDs {
		present[it.Metadata.Name] = true
	}
	missing := 0
	for name := range acked {
		if !present[name] {
			missing++
		}
	}
	if missing > 0 || len(acked) == 0 {
		t.Fatalf("%d of %d acknowledged writes are missing", missing, len(acked))
	}
	t.Logf("%d requests served, %d acknowledged writes all present, %d retried on another replica after the kill", done.Load(), len(acked), retried.Load())
}
