// Package clocktest gives tests their clocks: one base time for the whole
// suite, and a fake clock that moves only when a test moves it. The base is
// 2026-11-22T10:00:00Z unless SLUICE_TEST_EPOCH (RFC 3339) says otherwise,
// so CI can run the suite again years ahead and prove it depends on no date.
package clocktest

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// DefaultEpoch is the base of every test clock when SLUICE_TEST_EPOCH is unset.
var DefaultEpoch = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// EnvEpoch names the variable that moves the base of every test clock.
const EnvEpoch = "SLUICE_TEST_EPOCH"

// Epoch is the base of every test clock: SLUICE_TEST_EPOCH or DefaultEpoch.
// A malformed SLUICE_TEST_EPOCH panics: a suite silently run at the default
// base would prove nothing.
func Epoch() time.Time {
	v := os.Getenv(EnvEpoch)
	if v == "" {
		return DefaultEpoch
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		panic(fmt.Sprintf("clocktest: %s=%q is not an RFC 3339 time: %v", EnvEpoch, v, err))
	}
	return t.UTC()
}

// Fake is a clock that moves only when told. Safe for concurrent use.
type Fake struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a fake clock standing at Epoch plus offset.
func New(offset time.Duration) *Fake { return &Fake{t: Epoch().Add(offset)} }

// Now is the fake clock's time; pass c.Now wherever a clock is injected.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward by d.
func (c *Fake) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set puts the clock at t.
func (c *Fake) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
