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
	// loginParallel bounds password checks of existing users running at
	// once; loginParallelUnknown those against the throwaway hash (unknown
	// instance or user). The two queues are apart, so a flood of logins
	// for made-up users waits on its own slot and delays a real user's
	// login by at most loginParallel checks ahead of it.
	loginParallel        = 2
	loginParallelUnknown = 1
	// loginFailures attempts from one address for one user within
	// loginWindow, not followed by a success, refuse further attempts
	// until the window has passed; loginAddressFailures do so for every
	// user from that address.
	loginFailures        = 5
	loginAddressFailures = 20
	loginWindow          = 15 * time.Minute
	// loginTracked bounds the memory the counters use. When the table is
	// full, ended windows go first, then windows that are not a lockout;
	// active lockouts are never dropped (a full table of lockouts refuses
	// attempts from new keys until some end).
	loginTracked = 10000
)

// attempts counts one key's attempts in its window.
type attempts struct {
	first time.Time
	n     int
	limit int
}

func (a *attempts) locked(now time.Time) bool {
	return now.Sub(a.first) < loginWindow && a.n >= a.limit
}

// limitKey is a counter and the attempts it allows in a window.
type limitKey struct {
	key   string
	limit int
}

type throttle struct {
	once    sync.Once
	known   chan struct{}
	unknown chan struct{}
	mu      sync.Mutex
	seen    map[string]*attempts
}

func (t *throttle) init() {
	t.once.Do(func() {
		t.known = make(chan struct{}, loginParallel)
		t.unknown = make(chan struct{}, loginParallelUnknown)
		t.seen = map[string]*attempts{}
	})
}

func (t *throttle) queue(known bool) chan struct{} {
	t.init()
	if known {
		return t.known
	}
	return t.unknown
}

// acquire waits for a password-check slot of the queue for known or
// unknown users; false when the request ended while waiting.
func (t *throttle) acquire(ctx context.Context, known bool) bool {
	select {
	case t.queue(known) <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// tryAcquire takes a slot if one is free at once.
func (t *throttle) tryAcquire(known bool) bool {
	select {
	case t.queue(known) <- struct{}{}:
		return true
	default:
		return false
	}
}

func (t *throttle) release(known bool) { <-t.queue(known) }

// reserve counts an attempt against every key before the password is
// checked, so parallel guesses cannot all get through the check before the
// first failure is counted. When a key has used up its attempts nothing is
// counted, and reserve reports false with the time that key frees up.
func (t *throttle) reserve(now time.Time, keys ...limitKey) (time.Time, bool) {
	t.init()
	t.mu.Lock()
	defer t.mu.Unlock()
	var until time.Time
	for _, k := range keys {
		if a := t.seen[k.key]; a != nil && a.locked(now) {
			if end := a.first.Add(loginWindow); end.After(until) {
				until = end
			}
		}
	}
	if !until.IsZero() {
		return until, false
	}
	for _, k := range keys {
		a := t.seen[k.key]
		if a == nil || now.Sub(a.first) >= loginWindow {
			if a == nil && !t.makeRoom(now) {
				return now.Add(loginWindow), false
			}
			t.seen[k.key] = &attempts{first: now, n: 1, limit: k.limit}
			continue
		}
		a.n++
	}
	return time.Time{}, true
}

// makeRoom frees room in the table for a new key: when it is full, ended
// windows go, then windows that are no lockout, down to nine tenths of
// the bound, so a flood of new keys pays for a sweep once per thousand
// keys rather than at each one. False when only active lockouts fill it.
func (t *throttle) makeRoom(now time.Time) bool {
	if len(t.seen) < loginTracked {
		return true
	}
	const target = loginTracked * 9 / 10
	for k, a := range t.seen {
		if now.Sub(a.first) >= loginWindow {
			delete(t.seen, k)
		}
	}
	for k, a := range t.seen {
		if len(t.seen) <= target {
			break
		}
		if !a.locked(now) {
			delete(t.seen, k)
		}
	}
	return len(t.seen) < loginTracked
}

// succeed gives back a successful login's attempt: the user's counter is
// forgotten (a person who got it right starts afresh) and the address's
// goes down by one.
func (t *throttle) succeed(user, address string) {
	t.init()
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.seen, user)
	if a := t.seen[address]; a != nil && a.n > 0 {
		a.n--
	}
}
