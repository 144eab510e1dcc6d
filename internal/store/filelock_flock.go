//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// lockSpool marks f as an upload in progress for as long as it is open:
// flock's lock belongs to the open file, so it is released by Close and by
// the end of the process, whatever ended it.
func lockSpool(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// spoolAbandoned reports whether no open file holds the spool file at
// path, which is then left over from an upload that ended without
// removing it (a crash). It keeps the lock until close is called, so the
// file cannot be taken while it is removed.
func spoolAbandoned(path string) (abandoned bool, close func()) {
	f, err := os.Open(path)
	if err != nil {
		return false, func() {}
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		f.Close()
		return false, func() {}
	}
	return true, func() { f.Close() }
}

// holdContent takes the shared lock a backup holds on the content in dir
// while it copies what its snapshot names: removals (tryRemovals) wait
// until release. A directory that does not exist holds no content.
func holdContent(dir string) (release func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, contentLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// tryRemovals takes the exclusive lock content is removed under; false
// while a backup holds the content (or the lock cannot be had), when the
// removal waits for a later try.
func tryRemovals(dir string) (release func(), ok bool) {
	f, err := os.OpenFile(filepath.Join(dir, contentLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}
