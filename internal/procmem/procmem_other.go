//go:build !linux

package procmem

// DropExecutablePages does nothing outside Linux.
func DropExecutablePages() (int64, error) { return 0, nil }
