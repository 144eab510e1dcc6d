package procmem

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Work that stops is trimmed after once, at the first tick without work;
// a process that stays idle, or stays busy, is not trimmed again.
func TestIdleStepTrimsOnceWhenWorkStops(t *testing.T) {
	counts := []uint64{0, 0, 3, 9, 9, 9, 10, 10, 10}
	want := []bool{false, false, false, true, false, false, true, false}
	busy := false
	for i := 1; i < len(counts); i++ {
		var trim bool
		trim, busy = idleStep(counts[i-1], counts[i], busy)
		if trim != want[i-1] {
			t.Errorf("tick %d (count %d → %d): trim %v, want %v", i, counts[i-1], counts[i], trim, want[i-1])
		}
	}
}

// The end of a unit of work that ran over several ticks counts as work
// stopping: the first idle tick after it trims.
func TestActivityTrimsAfterLongWorkEnds(t *testing.T) {
	var a Activity
	last, busy := a.Count(), false
	step := func() bool {
		n := a.Count()
		var trim bool
		trim, busy = idleStep(last, n, busy)
		last = n
		return trim
	}
	a.Begin()
	step() // the tick that saw it start
	step() // it runs on: one trim while it runs, as before
	for i := 0; i < 3; i++ {
		if step() {
			t.Fatalf("tick %d: trimmed again while nothing began or ended", i)
		}
	}
	a.End()
	if step() {
		t.Fatal("trimmed at the tick that saw the request end")
	}
	if !step() {
		t.Fatal("not trimmed at the first idle tick after the request ended")
	}
}

// rssFileKB is this process's file-backed resident set.
func rssFileKB(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Skip("no RssFile")
	return 0
}

// Dropping the executable's pages lowers the file-backed resident set, and
// the process runs on: its code and read-only data are mapped again as
// they are used.
func TestDropExecutablePages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	before := rssFileKB(t)
	n, err := DropExecutablePages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	if n == 0 || after >= before {
		t.Fatalf("advised %d bytes; file-backed RSS %d kB → %d kB, want it lower", n, before, after)
	}
	// Still running: this code, strings and tables come back.
	if got := strings.Repeat("ab", 3) + strconv.Itoa(len(os.Args)); got == "" {
		t.Fatal("unreachable")
	}
	if err := Trim(); err != nil {
		t.Fatal(err)
	}
}
