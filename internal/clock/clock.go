// Package clock is where the control plane and the runtime read the time.
// Every service that decides with time (token expiry, leases, rate limits,
// sessions, backoff) takes a Func from its caller; a nil Func is the wall
// clock. Tests inject one fake clock per code path (see clocktest), so the
// suite never depends on the date it runs on. This package must not import
// any other Sluice package.
//
// internal/conventions holds the rule: a package with an injected clock
// calls time.Now only through here.
package clock

import "time"

// Func returns the current time. The zero value (nil) is the wall clock.
type Func func() time.Time

// Now returns f's time, or the wall clock's when f is nil.
func (f Func) Now() time.Time {
	if f == nil {
		return time.Now()
	}
	return f()
}

// Wall is the machine's clock, for wiring at process start.
func Wall() time.Time { return time.Now() }

// Since is the time elapsed since t by f.
func (f Func) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

// Stopwatch measures elapsed real time for metrics and spans. It decides
// nothing a test clock should drive, so it reads the machine's clock even
// in packages whose decisions take an injected Func.
type Stopwatch struct{ start time.Time }

// StartStopwatch starts a stopwatch now.
func StartStopwatch() Stopwatch { return Stopwatch{start: time.Now()} }

// Started is when the stopwatch started, by the machine's clock.
func (s Stopwatch) Started() time.Time { return s.start }

// Seconds is the real time since the start, in seconds.
func (s Stopwatch) Seconds() float64 { return time.Since(s.start).Seconds() }
