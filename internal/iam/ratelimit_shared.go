package iam

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Shared rate limits (PostgreSQL, several replicas).
//
// Counting every request in the database would cost the token path a
// round trip per request. Instead each replica reserves a slice of a
// key's quota for the current window from store.RateWindows and spends it
// in memory; only when its slice is spent does it reserve again. A slice
// is an eighth of what is left of the quota (at least 1, at most
// maxRateGrant), so slices shrink as the quota runs out.
//
// Windows are fixed and aligned (they start at multiples of the window
// length, so every replica agrees on them given synchronised clocks).
//
// Tolerance, per key and window:
//   - Never more than the limit is admitted across all replicas: a request
//     is admitted only against a reservation, and the upsert never reserves
//     beyond the limit.
//   - Fewer may be admitted: once the quota is all reserved, a replica whose
//     slice is spent refuses while others may still hold part of theirs.
//     Each replica holds at most one slice, of at most
//     min(maxRateGrant, ceil(left/8)) where left was the unreserved quota
//     when it took it; so at most (replicas−1) such slices are refused
//     early. A replica that keeps receiving traffic spends its slice, so a
//     burst spread over every replica gets exactly the limit; a replica
//     that stops (or crashes) strands its slice until the window ends.
//   - If the database cannot be reached the request is counted in this
//     process alone (each replica enforces the limit on its own traffic),
//     and OnSharedError is told.
//   - The RateLimit header's remaining count is this replica's view: what
//     was unreserved at its last reservation plus its own unspent slice.

// maxRateGrant caps a slice: with a limit high enough never to refuse, a
// replica still meets the database once per this many requests of a key.
const maxRateGrant = 256

// sharedTimeout bounds a reservation, so a database that hangs falls back
// to counting in this process instead of holding requests.
const sharedTimeout = 2 * time.Second

// lease is this replica's reservation of one key's quota in one window.
type lease struct {
	mu    sync.Mutex // held across the reservation's round trip
	start time.Time  // the window the reservation belongs to
	left  int        // reserved here and not yet spent
	used  int        // reserved by all replicas, as of the last reservation
	spent bool       // the store said the window's quota is all reserved
}

// shared decides like count, against reservations from rl.Shared. A
// refused request spends nothing. Locks are taken in the order of checks
// (client before instance), the same for every request.
func (rl *RateLimiter) shared(now time.Time, checks []check, add bool) (bool, []Quota, error) {
	ls := make([]*lease, len(checks))
	rl.mu.Lock()
	if rl.leases == nil {
		rl.leases = map[string]*lease{}
	}
	sweepBefore, sweep := rl.forgetOldLeases(now)
	var kb [maxKeyOnStack]byte
	for i := range checks {
		key := checks[i].appendKey(kb[:0])
		l := rl.leases[string(key)]
		if l == nil {
			l = &lease{}
			rl.leases[string(key)] = l
		}
		ls[i] = l
	}
	rl.mu.Unlock()
	if sweep {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		_, err := rl.Shared.DeleteRateWindowsBefore(ctx, sweepBefore)
		cancel()
		if err != nil && rl.OnSharedError != nil {
			rl.OnSharedError(err)
		}
	}
	for i, c := range checks {
		l := ls[i]
		l.mu.Lock()
		defer l.mu.Unlock()
		start := now.Truncate(c.limit.Window)
		if !l.start.Equal(start) {
			l.start, l.left, l.used, l.spent = start, 0, 0, false
		}
		if add && l.left == 0 && !l.spent {
			ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
			granted, used, err := rl.Shared.ReserveRate(ctx, sharedKey(string(c.appendKey(nil))), start, c.limit.Requests, maxRateGrant)
			cancel()
			if err != nil {
				return false, nil, err
			}
			l.left, l.used, l.spent = granted, used, granted == 0
		}
	}
	allowed := true
	for i, c := range checks {
		// Without add only a quota known to be spent refuses: another
		// replica's spending is learnt at the next reservation.
		if ls[i].left == 0 && (add || ls[i].spent) {
			if allowed && rl.OnRefuse != nil {
				rl.OnRefuse(c.policy)
			}
			allowed = false
		}
	}
	quotas := make([]Quota, len(checks))
	for i, c := range checks {
		l := ls[i]
		if allowed && add {
			l.left--
		}
		quotas[i] = Quota{Policy: c.policy, Limit: c.limit, Remaining: max(c.limit.Requests-l.used, 0) + l.left,
			Reset: resetSeconds(l.start.Add(c.limit.Window).Sub(now))}
	}
	return allowed, quotas, nil
}

// forgetOldLeases drops the reservations of ended windows, at most once a
// minute, and says whether (and before when) the store's ended windows
// should go too. The caller holds rl.mu.
func (rl *RateLimiter) forgetOldLeases(now time.Time) (time.Time, bool) {
	if now.Sub(rl.swept) < time.Minute {
		return time.Time{}, false
	}
	rl.swept = now
	longest := max(rl.PerClient.Window, rl.PerInstance.Window, rl.PerSource.Window)
	for k, l := range rl.leases {
		l.mu.Lock()
		ended := now.Sub(l.start) >= longest
		l.mu.Unlock()
		if ended {
			delete(rl.leases, k)
		}
	}
	return now.Add(-longest), true
}

// sharedKey is a limiter key as the store keeps it: PostgreSQL text holds
// no NUL.
func sharedKey(key string) string { return strings.ReplaceAll(key, "\x00", "\x1f") }
