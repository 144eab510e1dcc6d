package federation

import "time"

// Clock is the agent's one source of time: ping intervals, reply
// timeouts and reconnect backoff are all timers of it, so tests drive them
// without waiting. (The agent never reads the time of day.)
type Clock interface {
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// SystemClock is the wall clock.
type SystemClock struct{}

// NewTimer is time.NewTimer.
func (SystemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }

// Backoff is the delay before reconnect attempt n (0 for the first retry):
// Initial doubled per attempt up to Max, times a jitter factor in
// [1-Jitter, 1+Jitter) drawn from rand (a value in [0,1)), so agents cut
// off together do not all come back in the same instant.
type Backoff struct {
	Initial, Max time.Duration
	Jitter       float64
}

// DefaultBackoff is 1 s doubling to 30 s, ±20 %.
var DefaultBackoff = Backoff{Initial: time.Second, Max: 30 * time.Second, Jitter: 0.2}

// Delay computes the delay of attempt n given a random draw r in [0,1).
func (b Backoff) Delay(n int, r float64) time.Duration {
	d := b.Initial
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	f := 1 + b.Jitter*(2*r-1)
	return time.Duration(float64(d) * f)
}
