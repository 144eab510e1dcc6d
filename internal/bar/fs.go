package bar

import (
	"archive/zip"
	"io"
	"io/fs"
	"path"
	"time"
)

// archiveFS serves an Archive's checked entry table as an fs.FS. Only names
// that passed the reader's checks exist, so whatever reads it (the flow
// engine resolving "schemas/order.json") cannot reach outside the archive.
type archiveFS struct{ a *Archive }

var (
	_ fs.FS         = (*archiveFS)(nil)
	_ fs.ReadFileFS = (*archiveFS)(nil)
	_ fs.ReadDirFS  = (*archiveFS)(nil)
	_ fs.StatFS     = (*archiveFS)(nil)
)

func (s *archiveFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if f, ok := s.a.files[name]; ok {
		rc, err := f.Open()
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &entryFile{rc: rc, info: fileInfo{f: f, name: path.Base(name)}}, nil
	}
	if children, ok := s.a.dirs[name]; ok {
		entries := make([]fs.DirEntry, len(children))
		for i, c := range children {
			entries[i] = s.dirEntry(path.Join(name, c))
		}
		return &dirFile{info: fileInfo{name: path.Base(name), dir: true}, entries: entries}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (s *archiveFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrInvalid}
	}
	f, ok := s.a.files[name]
	if !ok {
		if _, isDir := s.a.dirs[name]; isDir {
			return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrInvalid}
		}
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrNotExist}
	}
	rc, err := f.Open()
	if err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	defer rc.Close()
	// The size was proven when the archive was read, so this allocation
	// is bounded by Limits.MaxFileSize.
	buf := make([]byte, f.UncompressedSize64)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return buf, nil
}

func (s *archiveFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	children, ok := s.a.dirs[name]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	entries := make([]fs.DirEntry, len(children))
	for i, c := range children {
		entries[i] = s.dirEntry(path.Join(name, c))
	}
	return entries, nil
}

func (s *archiveFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	if f, ok := s.a.files[name]; ok {
		return fileInfo{f: f, name: path.Base(name)}, nil
	}
	if _, ok := s.a.dirs[name]; ok {
		return fileInfo{name: path.Base(name), dir: true}, nil
	}
	return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
}

func (s *archiveFS) dirEntry(full string) fs.DirEntry {
	if f, ok := s.a.files[full]; ok {
		return fs.FileInfoToDirEntry(fileInfo{f: f, name: path.Base(full)})
	}
	return fs.FileInfoToDirEntry(fileInfo{name: path.Base(full), dir: true})
}

// fileInfo reports read-only modes whatever the archive claimed: the
// archive's permission bits mean nothing to a runtime.
type fileInfo struct {
	f    *zip.File // nil for directories
	name string
	dir  bool
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64 {
	if i.f == nil {
		return 0
	}
	return int64(i.f.UncompressedSize64)
}
func (i fileInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i fileInfo) ModTime() time.Time {
	if i.f == nil {
		return time.Time{}
	}
	return i.f.Modified
}
func (i fileInfo) IsDir() bool { return i.dir }
func (i fileInfo) Sys() any    { return nil }

type entryFile struct {
	rc   io.ReadCloser
	info fileInfo
}

func (f *entryFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *entryFile) Read(p []byte) (int, error) { return f.rc.Read(p) }
func (f *entryFile) Close() error               { return f.rc.Close() }

type dirFile struct {
	info    fileInfo
	entries []fs.DirEntry
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: fs.ErrInvalid}
}
func (d *dirFile) Close() error { return nil }

// ReadDir follows the fs.ReadDirFile contract: n > 0 reads in batches and
// ends with io.EOF, n <= 0 returns the rest at once.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return rest[:n], nil
}
