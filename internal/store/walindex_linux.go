package store

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// mapWALIndex maps the WAL index of the SQLite database at dbPath from the
// descriptor SQLite itself holds open on it (found in /proc/self/fd by the
// -shm file's device and inode). It must not open the file itself: closing
// any descriptor of a file releases every fcntl lock the process holds on
// it (POSIX), SQLite's included — and munmap releases none. The caller
// holds a connection to the database that has read, so SQLite's
// descriptor stays open meanwhile.
func mapWALIndex(dbPath string) (*walIndex, error) {
	fi, err := os.Stat(dbPath + "-shm")
	if err != nil {
		return nil, err
	}
	want, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, errors.New("store: no device and inode for the WAL index")
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	const size = 2 * walHeaderWords * 4
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Fstat(fd, &st) != nil || st.Dev != want.Dev || st.Ino != want.Ino {
			continue
		}
		if st.Size < size {
			return nil, fmt.Errorf("store: the WAL index is %d bytes, shorter than its header", st.Size)
		}
		mem, err := syscall.Mmap(fd, 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			return nil, err
		}
		// The descriptor is SQLite's and stays open; checked again in case
		// it was another one, closed and reused meanwhile.
		if syscall.Fstat(fd, &st) != nil || st.Dev != want.Dev || st.Ino != want.Ino {
			syscall.Munmap(mem)
			return nil, errors.New("store: the WAL index's descriptor changed while it was mapped")
		}
		return &walIndex{mem: mem}, nil
	}
	return nil, errors.New("store: SQLite holds no descriptor of the WAL index")
}

func (w *walIndex) unmap() { syscall.Munmap(w.mem) }
