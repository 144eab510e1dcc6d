//go:build !linux

package store

import "errors"

// mapWALIndex is Linux's alone (it finds SQLite's descriptor in
// /proc/self/fd): elsewhere the barrier asks PRAGMA data_version every
// time.
func mapWALIndex(string) (*walIndex, error) {
	return nil, errors.New("store: the WAL index is read through SQLite on this system")
}

func (w *walIndex) unmap() {}
