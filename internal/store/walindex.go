package store

import (
	"sync/atomic"
	"unsafe"
)

// The SQLite grant barrier asks PRAGMA data_version, which costs a read
// transaction: the statement's step, and two fcntl calls on the -shm file
// to take and drop a read lock — a few microseconds on every
// authenticated request. In WAL mode data_version changes exactly when the
// connection, beginning a read transaction, finds the WAL index's header
// different from the copy it kept (walIndexTryHdr compares the whole
// header; a difference resets the pager, which bumps the version). Every
// commit, from any process, rewrites that header before it returns (its
// change counter, iChange, goes up by one), and so does a recovery or a
// WAL restart. So the barrier reads the header itself, from the shared
// memory every connection to the file maps (https://sqlite.org/walformat.html,
// "The WAL-Index Header"): when it is as it was before the last run that
// read the versions, nothing was committed since, and the run's answer
// holds for this request too. Otherwise it runs the queries as before.

// walHeaderWords is the size of one copy of the WAL-index header (48
// bytes) in 32-bit words. The header is kept twice, back to back: a writer
// writes the second copy, then the first; a reader reads the first, then
// the second, and a difference means a write in progress.
const walHeaderWords = 12

// walHeader is one copy of the WAL-index header, in the file's (native)
// byte order: only ever compared whole.
type walHeader [walHeaderWords]uint32

// walIndex is the start of a database's WAL index (its -shm file), mapped
// read-only. It is valid while a connection to the database is open: that
// connection's locks keep every other process from deleting or rebuilding
// the file (dataVersion maps it after its own connection has read, and
// unmaps it before closing that connection).
type walIndex struct {
	mem []byte // at least two header copies, from mmap
}

// header reads the header as SQLite's readers do, each word with an atomic
// load (the copies are written by other processes too): false when the
// two copies differ (a commit is being written) or the header was never
// initialized.
func (w *walIndex) header() (walHeader, bool) {
	words := (*[2 * walHeaderWords]uint32)(unsafe.Pointer(&w.mem[0]))
	var first, second walHeader
	for i := range first {
		first[i] = atomic.LoadUint32(&words[i])
	}
	for i := range second {
		second[i] = atomic.LoadUint32(&words[walHeaderWords+i])
	}
	// isInit is the header's 13th byte (after iVersion, unused, iChange).
	isInit := (*[4 * walHeaderWords]byte)(unsafe.Pointer(&first))[12]
	return first, first == second && isInit != 0
}
