package store

import (
	"os"
	"time"
)

// WriteStamper is a store that can tell, without a query, whether anything
// may have been written to it since an earlier stamp, by this process or
// by another one. A reader that would otherwise re-read the store on a
// timer (the reconciler) compares stamps instead, and an idle process so
// runs none of the SQL engine's code between writes.
//
// Different stamps mean something may have been written (not necessarily
// anything the reader follows); equal stamps mean nothing was, short of a
// write within the file system's clock tick of the earlier stamp that left
// every size unchanged: a reader keeps a long resync as the guarantee.
type WriteStamper interface {
	WriteStamp() WriteStamp
}

// WriteStamp is a store's state of writes at one moment; stamps are
// compared with ==.
type WriteStamp struct {
	db, wal fileStamp
}

// fileStamp is what a write changes of a file; a missing file is the
// zero value.
type fileStamp struct {
	size  int64
	mtime time.Time
}

func stampFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), mtime: fi.ModTime()}
}

var _ WriteStamper = (*sqliteStore)(nil)

// WriteStamp on SQLite stats the database file and its write-ahead log:
// in WAL mode every commit appends to the log (or, after a checkpoint,
// writes it again from its start), which moves its modification time, and
// a checkpoint writes the database file. BAR contents live in files of
// their own, but every upload also writes its row.
func (s *sqliteStore) WriteStamp() WriteStamp {
	return WriteStamp{db: stampFile(s.location), wal: stampFile(s.location + "-wal")}
}
