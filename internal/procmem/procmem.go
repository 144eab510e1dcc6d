// Package procmem gives back the memory an idle Sluice process does not
// use: the pages of its own executable that start-up (or a burst of work)
// mapped, and the heap a burst grew.
//
// Starting a Sluice process runs the initialisation of every package
// linked into the one binary (the control plane, the runtime, every
// connector) and so maps, a page fault at a time and the kernel's
// fault-around (64 KiB around each fault) with it, most of the
// executable's text and read-only data: 25-30 MB of a 68 MB binary,
// counted in the process's RSS, although an idle runtime uses a few MB of
// it. Those mappings are read-only views of the file: dropping them
// (madvise MADV_DONTNEED) loses nothing, the page cache keeps the file,
// and a page used again is mapped again by a minor fault. Writable
// mappings (data, heap, stacks) are never touched. The heap a burst grew
// is returned to the system when the burst ends (debug.FreeOSMemory,
// after a collection that empties the sync.Pools' victim caches) rather
// than over minutes by the scavenger.
//
// SLUICE_IDLE_TRIM=off in the environment turns both off.
package procmem

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Env names the variable that, set to "off", keeps everything mapped.
const Env = "SLUICE_IDLE_TRIM"

// Enabled says whether trimming is on (SLUICE_IDLE_TRIM is not "off").
func Enabled() bool { return os.Getenv(Env) != "off" }

// Trim returns the free heap to the system and drops the executable's
// read-only pages. It collects twice: what a burst left in sync.Pools
// (archive/zip's flate compressors of the bundles served to starting
// replicas: 1.4 MB of an idle control plane's heap profile after
// bench/deploybench; encoders' and bufio's buffers) survives one
// collection in the pools' victim caches, and would otherwise stay
// resident until the collection after next, minutes later at idle.
func Trim() error {
	runtime.GC()
	debug.FreeOSMemory()
	_, err := DropExecutablePages()
	return err
}

// TrimWhenIdle trims once each time work stops: every tick it reads
// count (a counter of work done, e.g. requests served), and when the
// count moved during the previous tick but not during this one, it trims.
// Start-up counts as work: the first tick without any trims too, so the
// trim never competes with a process's first requests. It ends with ctx.
func TrimWhenIdle(ctx context.Context, tick time.Duration, count func() uint64, onErr func(error)) {
	t := time.NewTicker(tick)
	defer t.Stop()
	last, busy := count(), true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var trim bool
		n := count()
		trim, busy = idleStep(last, n, busy)
		last = n
		if trim {
			if err := Trim(); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// idleStep decides, from the count at the previous tick and now and
// whether the previous tick saw work, whether to trim now and whether
// this tick saw work.
func idleStep(last, now uint64, busy bool) (trim, busyNow bool) {
	if now != last {
		return false, true
	}
	return busy, false
}

// Activity counts work for TrimWhenIdle: each unit (a request) calls
// Begin when it starts and End when it ends, so that the end of one that
// ran for long (a watch a client kept open for minutes, an upload) counts
// as work stopping and is trimmed after; counting starts alone missed it.
// A unit in flight does not hold the trim off: a client that keeps a
// watch open all day would keep a burst's memory all day.
type Activity struct {
	events atomic.Uint64
}

// Begin records that a unit of work started.
func (a *Activity) Begin() { a.events.Add(1) }

// End records that a unit of work ended.
func (a *Activity) End() { a.events.Add(1) }

// Count is TrimWhenIdle's count: it moves with every Begin and End.
func (a *Activity) Count() uint64 { return a.events.Load() }
