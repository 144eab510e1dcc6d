package web

import (
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
)

func TestThrottleWindow(t *testing.T) {
	var th throttle
	now := clocktest.Epoch()
	for i := 0; i < loginFailures; i++ {
		if _, b := th.blocked("k", now); b {
			t.Fatalf("blocked after %d failures", i)
		}
		th.fail("k", now.Add(time.Duration(i)*time.Second))
	}
	until, b := th.blocked("k", now.Add(time.Minute))
	if !b || !until.Equal(now.Add(loginWindow)) {
		t.Fatalf("after %d failures: blocked=%v until %v", loginFailures, b, until)
	}
	if _, b := th.blocked("other", now); b {
		t.Fatal("another key is blocked too")
	}
	// The window passes: attempts are allowed again and counted afresh.
	later := now.Add(loginWindow)
	if _, b := th.blocked("k", later); b {
		t.Fatal("still blocked after the window")
	}
	th.fail("k", later)
	if _, b := th.blocked("k", later); b {
		t.Fatal("one failure in a new window blocks")
	}
	th.succeed("k")
	if f := th.seen["k"]; f != nil {
		t.Fatal("a success kept the failures")
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
	now := clocktest.Epoch()
	d := &Dashboard{Now: func() time.Time { return now }, SessionIdle: time.Hour, SessionMax: 3 * time.Hour}
	d.init()
	se := &session{id: "s", created: now, seen: now}
	d.sessions.m[se.id] = se
	for i := 0; i < 4; i++ { // active every 50 minutes: idle never passes
		now = now.Add(50 * time.Minute)
		if got := d.lookup("s"); (got != nil) != (i < 3) {
			t.Fatalf("at %v: live=%v", now, got != nil)
		}
	}
	// The 3 h cap ended it even though it was in use; it is gone for good.
	if d.alive(se) || d.sessions.m["s"] != nil {
		t.Fatal("session outlived its maximum age")
	}
	se2 := &session{id: "t", created: now, seen: now}
	d.sessions.m[se2.id] = se2
	now = now.Add(time.Hour + time.Second)
	if d.alive(se2) || d.lookup("t") != nil {
		t.Fatal("session outlived its idle time")
	}
}
