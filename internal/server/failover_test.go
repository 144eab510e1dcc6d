package server_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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
