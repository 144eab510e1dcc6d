package web

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

func TestThrottleWindow(t *testing.T) {
	var th throttle
	now := clocktest.Epoch()
	user, addr := limitKey{"u", loginFailures}, limitKey{"a", loginAddressFailures}
	for i := 0; i < loginFailures; i++ {
		if _, ok := th.reserve(now.Add(time.Duration(i)*time.Second), user, addr); !ok {
			t.Fatalf("refused after %d attempts", i)
		}
	}
	until, ok := th.reserve(now.Add(time.Minute), user, addr)
	if ok || !until.Equal(now.Add(loginWindow)) {
		t.Fatalf("after %d attempts: allowed=%v until %v", loginFailures, ok, until)
	}
	if _, ok := th.reserve(now, limitKey{"other", loginFailures}, addr); !ok {
		t.Fatal("another user from the address is refused too")
	}
	// The window passes: attempts are allowed again and counted afresh.
	later := now.Add(loginWindow)
	if _, ok := th.reserve(later, user, addr); !ok {
		t.Fatal("still refused after the window")
	}
	th.succeed("u", "a")
	if a := th.seen["u"]; a != nil {
		t.Fatal("a success kept the user's attempts")
	}
}

// 30 parallel guesses: 5 are let through to the password check, the rest
// refused — the attempt is counted before the check, not after it fails.
func TestThrottleReservesBeforeTheCheck(t *testing.T) {
	var th throttle
	now := clocktest.Epoch()
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := th.reserve(now, limitKey{"u", loginFailures}, limitKey{"a", loginAddressFailures}); ok {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if passed != loginFailures {
		t.Fatalf("%d of 30 parallel attempts let through, want %d", passed, loginFailures)
	}
}

// One address may try many users, but not without limit.
func TestThrottleLimitsAnAddress(t *testing.T) {
	var th throttle
	now := clocktest.Epoch()
	addr := limitKey{"a", loginAddressFailures}
	for i := 0; i < loginAddressFailures; i++ {
		if _, ok := th.reserve(now, limitKey{fmt.Sprint("u", i), loginFailures}, addr); !ok {
			t.Fatalf("refused at user %d", i)
		}
	}
	if _, ok := th.reserve(now, limitKey{"fresh", loginFailures}, addr); ok {
		t.Fatalf("the address tried %d users and may try another", loginAddressFailures)
	}
	if _, ok := th.reserve(now, limitKey{"fresh", loginFailures}, limitKey{"b", loginAddressFailures}); !ok {
		t.Fatal("another address is refused")
	}
}

// A full table keeps its active lockouts: a flood of new keys evicts
// counters that lock nothing, never a lockout.
func TestThrottleKeepsLockoutsWhenFull(t *testing.T) {
	var th throttle
	now := clocktest.Epoch()
	victim := limitKey{"locked", loginFailures}
	for i := 0; i < loginFailures; i++ {
		th.reserve(now, victim)
	}
	for i := 0; len(th.seen) < loginTracked; i++ {
		th.reserve(now, limitKey{fmt.Sprint("k", i), loginFailures})
	}
	for i := 0; i < 2*loginTracked; i++ {
		if _, ok := th.reserve(now.Add(time.Second), limitKey{fmt.Sprint("flood", i), loginFailures}); !ok {
			t.Fatalf("new key %d refused while the table holds counters that lock nothing", i)
		}
	}
	if len(th.seen) > loginTracked {
		t.Fatalf("the table holds %d keys, more than %d", len(th.seen), loginTracked)
	}
	if _, ok := th.reserve(now.Add(time.Minute), victim); ok {
		t.Fatal("a full table dropped an active lockout")
	}
}

// Password checks of unknown users (the throwaway hash) wait in a queue of
// their own: with it full, a real user's check still gets a slot.
func TestUnknownUsersQueueApart(t *testing.T) {
	var th throttle
	for th.tryAcquire(false) {
	}
	if !th.tryAcquire(true) {
		t.Fatal("a flood of unknown users' checks took the slot a real user's check needs")
	}
	th.release(true)
	for i := 0; i < loginParallelUnknown; i++ {
		th.release(false)
	}
	if !th.tryAcquire(false) {
		t.Fatal("released unknown-user slots are not free again")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/bar-files":               "/bar-files",
		"/runtimes/a?x=1":          "/runtimes/a?x=1",
		"":                         "/runtimes",
		"https://evil.example/":    "/runtimes",
		"//evil.example/":          "/runtimes",
		`/\evil.example/`:          "/runtimes",
		"/login":                   "/runtimes",
		"/login?next=/x":           "/runtimes",
		"/audit?actor=user:al#top": "/audit?actor=user:al#top",
		// Browsers drop tabs and newlines from a Location: "/\t/evil.example"
		// would land on //evil.example (what ?next=/%09/evil.example decodes to).
		"/\t/evil.example":    "/runtimes",
		"/\n/evil.example":    "/runtimes",
		"/\r\n/evil.example":  "/runtimes",
		"/%09/evil.example":   "/runtimes",
		"/%5C/evil.example":   "/runtimes",
		"/%2F/evil.example":   "/runtimes",
		"/\x7f/evil.example":  "/runtimes",
		"\\evil.example":      "/runtimes",
		"/a\\b":               "/runtimes",
		"https:evil.example":  "/runtimes",
		"javascript:alert(1)": "/runtimes",
		"/runtimes/\x00":      "/runtimes",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionExpiry(t *testing.T) {
	ctx := context.Background()
	now := clocktest.Epoch()
	st, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	admin := store.Identity{ID: "usr-1", InstanceID: "inst1", Kind: store.KindUser, Name: "admin", Role: "admin", CreatedAt: now, UpdatedAt: now}
	if err := st.CreateInstance(ctx, store.NewInstance{Instance: store.Instance{ID: "inst1", Name: "inst1", CreatedAt: now}, Admin: admin,
		Key:        store.APIKey{ID: "ak-1", InstanceID: "inst1", OwnerID: admin.ID, Name: "initial", KeyHash: "kh", CreatedAt: now},
		Credential: store.ClientCredential{ClientID: "c-1", InstanceID: "inst1", Name: "initial", SecretHash: "sh", CreatedAt: now}}); err != nil {
		t.Fatal(err)
	}
	d := &Dashboard{Store: st, Now: func() time.Time { return now }, SessionIdle: time.Hour, SessionMax: 3 * time.Hour}
	d.init()
	open := func(id string) *session {
		t.Helper()
		if err := st.PutDashboardSession(ctx, store.DashboardSession{IDHash: sessionHash(id), InstanceID: "inst1", IdentityID: admin.ID,
			SubjectName: "admin", CreatedAt: now, SeenAt: now}); err != nil {
			t.Fatal(err)
		}
		return &session{id: id, hash: sessionHash(id)}
	}
	live := func(id string) bool {
		t.Helper()
		se, err := d.lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return se != nil
	}
	se := open("s")
	for i := 0; i < 4; i++ { // active every 50 minutes: idle never passes
		now = now.Add(50 * time.Minute)
		if got := live("s"); got != (i < 3) {
			t.Fatalf("at %v: live=%v", now, got)
		}
	}
	// The 3 h cap ended it even though it was in use; it is gone for good.
	if d.alive(ctx, se) {
		t.Fatal("session outlived its maximum age")
	}
	if _, err := st.GetDashboardSession(ctx, se.hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the expired session is still stored: %v", err)
	}
	se2 := open("t")
	now = now.Add(time.Hour + time.Second)
	if d.alive(ctx, se2) || live("t") {
		t.Fatal("session outlived its idle time")
	}
	// Activity within the precision is not written, and still counts from
	// the last write: idle ends at most seenPrecision late.
	open("u")
	now = now.Add(seenPrecision / 2)
	live("u")
	if got, _ := st.GetDashboardSession(ctx, sessionHash("u")); !got.SeenAt.Equal(now.Add(-seenPrecision / 2)) {
		t.Fatalf("a look within %v wrote the store: seen %v", seenPrecision, got.SeenAt)
	}
	now = now.Add(seenPrecision)
	live("u")
	if got, _ := st.GetDashboardSession(ctx, sessionHash("u")); !got.SeenAt.Equal(now) {
		t.Fatalf("activity after %v was not written: seen %v, now %v", seenPrecision, got.SeenAt, now)
	}
}
