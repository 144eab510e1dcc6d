// Package bar owns the BAR format: the zip archive that carries one
// integration project from a developer's machine to a runtime. It reads
// archives defensively (untrusted uploads: traversal, symlinks, zip bombs,
// duplicates, garbage), exposes their content as an fs.FS, validates them by
// loading the project with the flow engine, builds them deterministically
// from a project directory and describes them (manifest, flows, triggers,
// endpoints).
//
// It owns the archive, not what is inside: the meaning of the manifest and
// the flow files belongs to package flow. It never extracts anything to
// disk, so a hostile archive cannot touch the file system.
package bar

import (
	"errors"
	"fmt"
)

// Errors a reader can wrap; match them with errors.Is. Each refusal also
// carries the offending entry name (see EntryError) so a person can fix the
// archive without guessing.
var (
	ErrNotZip      = errors.New("not a zip archive")
	ErrUnsafePath  = errors.New("unsafe path")
	ErrSymlink     = errors.New("symbolic links are not allowed")
	ErrSpecialFile = errors.New("only regular files and directories are allowed")
	ErrDuplicate   = errors.New("duplicate entry")
	ErrTooLarge    = errors.New("too large")
	ErrTooMany     = errors.New("too many entries")
	ErrCompression = errors.New("suspicious compression ratio")
	ErrOverlap     = errors.New("entries overlap")
	ErrEncrypted   = errors.New("encrypted entries are not supported")
	ErrCorrupt     = errors.New("corrupt entry")
	ErrInvalid     = errors.New("invalid project")
)

// EntryError names the archive entry a refusal is about.
type EntryError struct {
	Name string // entry name as stored in the archive (untrusted: always quoted when printed)
	Err  error  // one of the Err* values, possibly wrapped with detail
}

func (e *EntryError) Error() string { return fmt.Sprintf("bar: entry %q: %v", e.Name, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// Limits bounds what a reader accepts. Zero fields take the default.
type Limits struct {
	MaxArchiveSize int64 // bytes of the archive itself
	MaxEntries     int   // entries in the central directory
	MaxFileSize    int64 // uncompressed bytes of one entry
	MaxTotalSize   int64 // uncompressed bytes of all entries together
	// MaxRatio bounds uncompressed/compressed size of one entry once it is
	// larger than RatioFloor: real project files (YAML, JSON, jq) compress
	// 3–30×, deflate bombs 1000× and more.
	MaxRatio   int64
	RatioFloor int64
}

// DefaultLimits are generous for an integration project (a 50 MB upload of
// static files passes) and small enough that a hostile archive cannot make
// a reader allocate or inflate without bound.
var DefaultLimits = Limits{
	MaxArchiveSize: 100 << 20,
	MaxEntries:     10000,
	MaxFileSize:    32 << 20,
	MaxTotalSize:   256 << 20,
	MaxRatio:       200,
	RatioFloor:     1 << 20,
}

func (l *Limits) withDefaults() Limits {
	d := DefaultLimits
	if l == nil {
		return d
	}
	out := *l
	if out.MaxArchiveSize <= 0 {
		out.MaxArchiveSize = d.MaxArchiveSize
	}
	if out.MaxEntries <= 0 {
		out.MaxEntries = d.MaxEntries
	}
	if out.MaxFileSize <= 0 {
		out.MaxFileSize = d.MaxFileSize
	}
	if out.MaxTotalSize <= 0 {
		out.MaxTotalSize = d.MaxTotalSize
	}
	if out.MaxRatio <= 0 {
		out.MaxRatio = d.MaxRatio
	}
	if out.RatioFloor <= 0 {
		out.RatioFloor = d.RatioFloor
	}
	return out
}
