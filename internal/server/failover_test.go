package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// A leader that stalls (SIGSTOP: its process is frozen, its connections
// stay open, so a lock held by a connection would never be freed) loses
// its leaderships when their leases expire, and the other replica takes
// them over; thawed, the old leader finds the leases gone and does not
// take them back while the new leader renews them. The figure logged is
// the time from the stall to the takeover.
func TestStalledLeaderIsReplaced(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	opts := servertest.Options{Store: dsn, Env: []string{"SLUICE_MASTER_KEY=" + sharedKey}, Args: []string{"--runtime-backend", "none"}}
	replicas := []*servertest.Server{servertest.Start(t, opts), servertest.Start(t, opts)}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	holderOf := func(name string) (int, string) {
		t.Helper()
		var holder string
		err := db.QueryRowContext(ctx, `SELECT holder FROM leader_leases WHERE name = $1`, name).Scan(&holder)
		if err == sql.ErrNoRows {
			return -1, ""
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range replicas {
			if strings.Contains(holder, fmt.Sprintf("/%d/", r.Pid())) {
				return i, holder
			}
		}
		return -1, holder
	}
	const name = "lease-sweeper"
	waitFor := func(what string, ok func(int) bool) int {
		t.Helper()
		for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if i, _ := holderOf(name); ok(i) {
				return i
			}
		}
		i, h := holderOf(name)
		t.Fatalf("%s: the %s lease is held by %q (replica %d)", what, name, h, i)
		return -1
	}
	leader := waitFor("start", func(i int) bool { return i >= 0 })
	other := 1 - leader

	stalled := time.Now()
	replicas[leader].Signal(syscall.SIGSTOP)
	waitFor("leader stalled", func(i int) bool { return i == other })
	t.Logf("takeover %v after the leader stalled", time.Since(stalled).Round(10*time.Millisecond))

	replicas[leader].Signal(syscall.SIGCONT)
	// The thawed process renews no more and takes nothing back: a few
	// renewal periods later the lease is still the new leader's.
	for i := 0; i < 10; i++ {
		time.Sleep(200 * time.Millisecond)
		if h, holder := holderOf(name); h != other {
			t.Fatalf("after the old leader thawed the lease is %q (replica %d), not the new leader's", holder, h)
		}
	}
	// And it still serves as a follower.
	if code, body := replicas[leader].Admin(t).Do("GET", "/api/v1/whoami", nil); code != 200 {
		t.Fatalf("the thawed replica does not serve: %d %s", code, body)
	}
}

// A leader killed (SIGKILL) under load is replaced, and the new leader
// reconciles at once: a runtime PUT at a survivor just after the kill
// gets its first status from the new leader's reconciler (the local
// backend; replicas 0, and its BAR does not exist, so the pass reports
// the missing dependency). Done twice: the leader of three replicas, then
// the new leader of the two left. The figures logged are, from the kill,
// the time until a survivor holds the lease and until the runtime's
// status is written — issue 19 item 4 asks for 2 s. Requests at the
// survivors must not fail meanwhile.
func TestKilledLeaderIsReplacedUnderLoad(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	opts := servertest.Options{Store: dsn, Env: []string{"SLUICE_MASTER_KEY=" + sharedKey},
		Args: []string{"--public-url", "http://sluice.test",
			"--rate-limit-client", "off", "--rate-limit-instance", "off", "--rate-limit-source", "off"}}
	replicas := []*servertest.Server{servertest.Start(t, opts), servertest.Start(t, opts), servertest.Start(t, opts)}
	for _, r := range replicas[1:] {
		r.Creds = replicas[0].Creds
	}
	creds := replicas[0].Creds
	admin := replicas[0].Admin(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var dead sync.Map // index -> true once killed
	leaderIndex := func() int {
		var holder string
		if err := db.QueryRowContext(ctx, `SELECT holder FROM leader_leases WHERE name = 'reconciler' AND expires_at > `+
			`CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`).Scan(&holder); err != nil {
			return -1
		}
		for i, r := range replicas {
			if _, gone := dead.Load(i); !gone && strings.Contains(holder, fmt.Sprintf("/%d/", r.Pid())) {
				return i
			}
		}
		return -1
	}

	// The load: token exchanges and identity writes, round-robin over the
	// replicas alive; a request in flight at the instant of a kill may
	// fail, any other failure is the test's.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures []string
	var mu sync.Mutex
	var served atomic.Int64
	httpc := &http.Client{Timeout: 30 * time.Second}
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := (w + i) % len(replicas)
				if _, gone := dead.Load(r); gone {
					continue
				}
				var req *http.Request
				if i%2 == 0 {
					b, _ := json.Marshal(map[string]string{"apiKey": creds.APIKey})
					req, _ = http.NewRequest("POST", replicas[r].URL+"/api/v1/tokens", bytes.NewReader(b))
					req.Header.Set("X-IBM-Client-Secret", creds.ClientSecret)
					req.Header.Set("x-ibm-instance-id", creds.InstanceID)
				} else {
					name := fmt.Sprintf("load-%d-%05d", w, i)
					b, _ := json.Marshal(map[string]any{"metadata": map[string]string{"name": name}, "spec": map[string]string{"role": "viewer"}})
					req, _ = http.NewRequest("PUT", replicas[r].URL+"/api/v1/service-ids/"+name, bytes.NewReader(b))
					req.Header.Set("Authorization", "Bearer "+admin.Token)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-IBM-Client-Id", creds.ClientID)
				resp, err := httpc.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err == nil && resp.StatusCode/100 == 2 {
					served.Add(1)
					continue
				}
				if _, gone := dead.Load(r); gone {
					continue // in flight at the killed replica
				}
				mu.Lock()
				failures = append(failures, fmt.Sprintf("replica %d: %s %s: %v %v", r, req.Method, req.URL.Path, err, resp))
				mu.Unlock()
			}
		})
	}
	var stopOnce sync.Once
	stopLoad := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	defer stopLoad()

	waitLeader := func(what string) int {
		t.Helper()
		for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if i := leaderIndex(); i >= 0 {
				return i
			}
		}
		t.Fatalf("%s: no live replica leads the reconciler", what)
		return -1
	}
	reconciled := func(r int, name string) bool {
		req, _ := http.NewRequest("GET", replicas[r].URL+"/api/v1/integration-runtimes/"+name, nil)
		req.Header.Set("Authorization", "Bearer "+admin.Token)
		req.Header.Set("X-IBM-Client-Id", creds.ClientID)
		resp, err := httpc.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var rt struct {
			Status struct {
				Conditions []struct{ Type, Reason string } `json:"conditions"`
			} `json:"status"`
		}
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&rt) != nil {
			return false
		}
		for _, c := range rt.Status.Conditions {
			if c.Type == "DependenciesAvailable" && c.Reason == "Missing" {
				return true
			}
		}
		return false
	}

	leader := waitLeader("start")
	time.Sleep(2 * time.Second) // the load runs before the first kill
	for round := range 2 {
		survivor := -1
		for i := range replicas {
			if _, gone := dead.Load(i); !gone && i != leader {
				survivor = i
				break
			}
		}
		name := fmt.Sprintf("after-kill-%d", round)
		killed := time.Now()
		dead.Store(leader, true)
		replicas[leader].Kill()
		c := replicas[survivor].Bind(t, admin) // the token works at every replica
		if code, body := c.Do("PUT", "/api/v1/integration-runtimes/"+name, map[string]any{"metadata": map[string]any{"name": name},
			"spec": map[string]any{"barURL": []string{"http://sluice.test/api/v1/bar-files/absent/content"}, "replicas": 0}}); code != 201 {
			t.Fatalf("PUT at replica %d after the kill: %d %s", survivor, code, body)
		}
		put := time.Since(killed)
		newLeader := waitLeader(fmt.Sprintf("round %d", round))
		took := time.Since(killed)
		for end := time.Now().Add(60 * time.Second); !reconciled(survivor, name); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("round %d: the runtime PUT after the kill was not reconciled", round)
			}
		}
		t.Logf("round %d: killed the leader (replica %d); PUT at replica %d done %v after the kill; replica %d led %v after it; the runtime reconciled %v after it",
			round, leader, survivor, put.Round(time.Millisecond), newLeader, took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
		leader = newLeader
		time.Sleep(time.Second)
	}
	stopLoad()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed at replicas that were not killed, e.g. %v", len(failures), failures[:min(5, len(failures))])
	}
	t.Logf("%d requests served under the load", served.Load())
}
