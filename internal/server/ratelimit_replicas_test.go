package server_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// Three control planes on one PostgreSQL schema share a client's rate
// limit: token exchanges sent to all three at once get exactly the limit
// between them (each replica spends the slice it reserved before it
// refuses), then every replica answers 429 with Retry-After, for token
// exchanges and API calls alike.
func TestRateLimitAcrossReplicas(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	const limit = 30
	// A long window: the burst cannot straddle a window's end (windows
	// are aligned to multiples of their length on the wall clock).
	args := []string{"--public-url", "http://sluice.test", "--runtime-backend", "none",
		"--rate-limit-client", strconv.Itoa(limit) + "/240h", "--rate-limit-instance", "off", "--rate-limit-source", "off"}
	env := []string{"SLUICE_MASTER_KEY=" + sharedKey}
	var rs []*servertest.Server
	for range 3 {
		rs = append(rs, servertest.Start(t, servertest.Options{Store: dsn, Env: env, Args: args}))
	}
	admin := rs[0].Admin(t)
	code, body := admin.Do("POST", "/api/v1/credentials", map[string]any{"metadata": map[string]string{"name": "bursty"}})
	if code != 201 {
		t.Fatalf("create credential: %d %s", code, body)
	}
	var cred struct{ ClientID, ClientSecret string }
	json.Unmarshal(body, &cred)
	exchange := func(s *servertest.Server) (int, string) {
		t.Helper()
		resp, body, err := servertest.Exchange(s.URL, cred.ClientID, cred.ClientSecret, rs[0].Creds.InstanceID, rs[0].Creds.APIKey)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 && resp.StatusCode != 429 {
			t.Fatalf("token exchange: %d %s", resp.StatusCode, body)
		}
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}

	// A token of the client, for its API calls: one exchange of the limit.
	tok := rs[0].Login(t, cred.ClientID, cred.ClientSecret, rs[0].Creds.InstanceID, rs[0].Creds.APIKey)
	var admitted atomic.Int64
	admitted.Add(1)
	var wg sync.WaitGroup
	for _, s := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range limit {
				if code, _ := exchange(s); code == 200 {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for i, s := range rs {
		for {
			code, retry := exchange(s)
			if code == 200 {
				admitted.Add(1)
				continue
			}
			if n, err := strconv.Atoi(retry); err != nil || n < 1 {
				t.Fatalf("replica %d: token exchange 429 with Retry-After %q", i, retry)
			}
			break
		}
	}
	// Then every replica refuses the client's API calls too.
	for i, s := range rs {
		req, _ := http.NewRequest("GET", s.URL+"/api/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("X-IBM-Client-Id", cred.ClientID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if n, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 429 || n < 1 {
			t.Fatalf("replica %d: whoami = %d with Retry-After %q, want 429 with a wait", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if n := admitted.Load(); n != limit {
		t.Fatalf("%d token exchanges admitted across 3 replicas, want exactly the limit %d", n, limit)
	}
}
