package web

import (
	"context"
	"sync"
	"time"
)

// Login throttling. Each password check is an argon2id hash of 64 MiB,
// so unbounded parallel logins would exhaust memory, and unbounded
// attempts would let a script guess passwords at the machine's speed.
const (
	// loginParallel bounds password checks running at once.
	loginParallel = 2
	// loginFailures failed logins from one address for one user within
	// loginWindow refuse further attempts until the window has passed.
	loginFailures = 5
	loginWindow   = 15 * time.Minute
	// loginTracked bounds the memory the counters use; past it the
	// oldest windows are dropped first by sweep, then everything.
	loginTracked = 10000
)

type failures struct {
	first time.Time
	n     int
}

type throttle struct {
	once  sync.Once
	slots chan struct{}
	mu    sync.Mutex
	seen  map[string]*failures
}

func (t *throttle) init() {
	t.once.Do(func() {
		t.slots = make(chan struct{}, loginParallel)
		t.seen = map[string]*failures{}
	})
}

// acquire waits for a password-check slot; false when the request ended
// while waiting.
func (t *throttle) acquire(ctx context.Context) bool {
	t.init()
	select {
	case t.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (t *throttle) release() { <-t.slots }

// blocked reports whether key has used up its attempts, and until when.
func (t *throttle) blocked(key string, now time.Time) (time.Time, bool) {
	t.init()
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.seen[key]
	if !ok || now.Sub(f.first) >= loginWindow {
		return time.Time{}, false
	}
	return f.first.Add(loginWindow), f.n >= loginFailures
}

func (t *throttle) fail(key string, now time.Time) {
	t.init()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.seen) >= loginTracked {
		for k, f := range t.seen {
			if now.Sub(f.first) >= loginWindow {
				delete(t.seen, k)
			}
		}
		if len(t.seen) >= loginTracked {
			t.seen = map[string]*failures{}
		}
	}
	f, ok := t.seen[key]
	if !ok || now.Sub(f.first) >= loginWindow {
		t.seen[key] = &failures{first: now, n: 1}
		return
	}
	f.n++
}

// succeed forgets key's failures: a person who got it right starts afresh.
func (t *throttle) succeed(key string) {
	t.init()
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.seen, key)
}
