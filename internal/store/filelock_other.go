//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package store

import "os"

// lockSpool does nothing where flock is not available; spool files left
// over from a crash are then never removed (see spoolAbandoned).
func lockSpool(*os.File) error { return nil }

// spoolAbandoned cannot tell a spool file in use from one left over
// without flock, so it reports none abandoned.
func spoolAbandoned(string) (bool, func()) { return false, func() {} }

// holdContent cannot keep removals off without flock: a backup then
// takes its copy again when content went (errContentGone).
func holdContent(string) (func(), error) { return func() {}, nil }

// tryRemovals always allows a removal without flock.
func tryRemovals(string) (func(), bool) { return func() {}, true }
