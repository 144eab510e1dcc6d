package bar

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"unicode"
)

// Archive is a BAR whose structure has been checked: every entry has a safe
// relative name, is a regular file or a directory, appears once, and
// inflates to exactly its declared size within the limits. Its content is
// read lazily from the underlying io.ReaderAt, which must stay readable for
// as long as the Archive is used.
type Archive struct {
	files   map[string]*zip.File
	dirs    map[string][]string // directory → sorted base names of its children
	names   []string            // regular files, sorted
	total   int64               // uncompressed bytes of all files
	size    int64               // bytes of the archive
	closer  io.Closer           // set by Open
	fsys    *archiveFS
	entries int
}

// Open reads the BAR file at path. Close the Archive when done with it.
func Open(name string, lim *Limits) (*Archive, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("bar: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("bar: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("bar: %s: not a regular file", name)
	}
	a, err := Read(f, st.Size(), lim)
	if err != nil {
		f.Close()
		return nil, err
	}
	a.closer = f
	return a, nil
}

// Close releases the file opened by Open; it is a no-op for an Archive made
// by Read.
func (a *Archive) Close() error {
	if a.closer == nil {
		return nil
	}
	return a.closer.Close()
}

// Read checks the archive of the given size readable through r. It never
// holds the whole archive in memory: the central directory is parsed and
// every entry is inflated once, into a counter, to prove its size and
// checksum; content is inflated again on demand through FS.
func Read(r io.ReaderAt, size int64, lim *Limits) (*Archive, error) {
	l := lim.withDefaults()
	if size <= 0 {
		return nil, fmt.Errorf("bar: %w: the input is empty", ErrNotZip)
	}
	if size > l.MaxArchiveSize {
		return nil, fmt.Errorf("bar: archive is %s, the limit is %s: %w", byteCount(size), byteCount(l.MaxArchiveSize), ErrTooLarge)
	}
	// Refuse an absurd entry count before archive/zip allocates a record
	// for each of them.
	if n, ok := declaredEntries(r, size); ok && n > uint64(l.MaxEntries) {
		return nil, fmt.Errorf("bar: %d entries, the limit is %d: %w", n, l.MaxEntries, ErrTooMany)
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		// Our own name checks below give a more precise message for
		// insecure paths; anything else means the bytes are not a zip.
		return nil, fmt.Errorf("bar: %w: %v", ErrNotZip, err)
	}
	if len(zr.File) == 0 {
		return nil, fmt.Errorf("bar: %w: the archive has no entries", ErrInvalid)
	}
	if len(zr.File) > l.MaxEntries {
		return nil, fmt.Errorf("bar: %d entries, the limit is %d: %w", len(zr.File), l.MaxEntries, ErrTooMany)
	}

	a := &Archive{
		files:   make(map[string]*zip.File, len(zr.File)),
		dirs:    map[string][]string{".": nil},
		size:    size,
		entries: len(zr.File),
	}
	folded := make(map[string]string, len(zr.File))
	explicitDirs := map[string]bool{}
	var declaredTotal uint64
	for _, f := range zr.File {
		name, isDir, err := checkEntry(f)
		if err != nil {
			return nil, &EntryError{Name: f.Name, Err: err}
		}
		// Two names that differ only in case would collide when the
		// project is unpacked on macOS or Windows; treat them as duplicates.
		key := strings.ToLower(name)
		if prev, dup := folded[key]; dup {
			if prev == name {
				return nil, &EntryError{Name: f.Name, Err: ErrDuplicate}
			}
			return nil, &EntryError{Name: f.Name, Err: fmt.Errorf("%w: differs only in case from %q", ErrDuplicate, prev)}
		}
		folded[key] = name
		if isDir {
			explicitDirs[name] = true
			continue
		}
		if f.UncompressedSize64 > uint64(l.MaxFileSize) {
			return nil, &EntryError{Name: f.Name, Err: fmt.Errorf("%w: %s uncompressed, the limit is %s", ErrTooLarge, byteCount(int64(min(f.UncompressedSize64, 1<<62))), byteCount(l.MaxFileSize))}
		}
		if err := checkRatio(f.UncompressedSize64, f.CompressedSize64, l); err != nil {
			return nil, &EntryError{Name: f.Name, Err: err}
		}
		declaredTotal += f.UncompressedSize64
		if declaredTotal > uint64(l.MaxTotalSize) {
			return nil, fmt.Errorf("bar: entries add up to more than %s uncompressed: %w", byteCount(l.MaxTotalSize), ErrTooLarge)
		}
		a.files[name] = f
		a.names = append(a.names, name)
	}
	if err := checkOverlap(zr.File, size); err != nil {
		return nil, err
	}
	// A file may not also be a directory ("a" and "a/b").
	for _, name := range a.names {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if _, clash := a.files[dir]; clash {
				return nil, &EntryError{Name: dir, Err: fmt.Errorf("%w: it is a file and also the directory of %q", ErrDuplicate, name)}
			}
		}
	}
	for dir := range explicitDirs {
		if _, clash := a.files[dir]; clash {
			return nil, &EntryError{Name: dir, Err: fmt.Errorf("%w: it is a file and also a directory", ErrDuplicate)}
		}
	}
	if len(a.names) == 0 {
		return nil, fmt.Errorf("bar: %w: the archive holds no files", ErrInvalid)
	}
	sort.Strings(a.names)
	// Inflate every entry once: archive/zip fails the read when the data
	// is longer or shorter than declared or its CRC-32 is wrong, so after
	// this loop declared sizes can be trusted.
	for _, name := range a.names {
		n, err := inflate(a.files[name], l.MaxFileSize)
		if err != nil {
			return nil, &EntryError{Name: a.files[name].Name, Err: err}
		}
		a.total += n
	}
	a.buildDirs(explicitDirs)
	a.fsys = &archiveFS{a: a}
	return a, nil
}

// checkEntry vets one central-directory record and returns its clean name.
func checkEntry(f *zip.File) (name string, isDir bool, err error) {
	if err := checkName(f.Name); err != nil {
		return "", false, err
	}
	mode := f.Mode()
	switch {
	case mode&fs.ModeSymlink != 0:
		return "", false, ErrSymlink
	case mode&fs.ModeType&^fs.ModeDir != 0:
		return "", false, fmt.Errorf("%w (mode %v)", ErrSpecialFile, mode)
	case f.Flags&0x1 != 0:
		return "", false, ErrEncrypted
	}
	isDir = strings.HasSuffix(f.Name, "/") || mode.IsDir()
	name = strings.TrimSuffix(f.Name, "/")
	if isDir {
		if f.UncompressedSize64 != 0 {
			return "", false, fmt.Errorf("%w: a directory entry with content", ErrCorrupt)
		}
		return name, true, nil
	}
	if f.Method != zip.Store && f.Method != zip.Deflate {
		return "", false, fmt.Errorf("%w: compression method %d is not supported (use deflate or store)", ErrCorrupt, f.Method)
	}
	return name, false, nil
}

// checkName accepts only clean, relative, slash-separated names: what an
// extractor would write inside its target directory and nowhere else.
func checkName(name string) error {
	switch {
	case name == "" || name == "/":
		return fmt.Errorf("%w: empty name", ErrUnsafePath)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("%w: absolute path", ErrUnsafePath)
	case len(name) >= 2 && name[1] == ':' && unicode.IsLetter(rune(name[0])):
		return fmt.Errorf("%w: absolute path (drive letter)", ErrUnsafePath)
	case strings.Contains(name, `\`):
		return fmt.Errorf("%w: backslash in name (use / as separator)", ErrUnsafePath)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == unicode.ReplacementChar {
			return fmt.Errorf("%w: control or invalid character in name", ErrUnsafePath)
		}
	}
	trimmed := strings.TrimSuffix(name, "/")
	for _, elem := range strings.Split(trimmed, "/") {
		if elem == ".." {
			return fmt.Errorf("%w: path traversal (..)", ErrUnsafePath)
		}
	}
	if !fs.ValidPath(trimmed) {
		return fmt.Errorf("%w: not a clean relative path (empty or '.' element)", ErrUnsafePath)
	}
	return nil
}

func checkRatio(uncompressed, compressed uint64, l Limits) error {
	if uncompressed <= uint64(l.RatioFloor) {
		return nil
	}
	if compressed == 0 || uncompressed/compressed > uint64(l.MaxRatio) {
		return fmt.Errorf("%w: %s inflate from %s, more than %d×", ErrCompression,
			byteCount(int64(min(uncompressed, 1<<62))), byteCount(int64(min(compressed, 1<<62))), l.MaxRatio)
	}
	return nil
}

// checkOverlap refuses archives whose entries share compressed bytes, the
// trick behind non-recursive zip bombs (many entries pointing at one
// inflating kernel), and entries whose data lies outside the archive.
func checkOverlap(files []*zip.File, size int64) error {
	type span struct {
		start, end int64
		name       string
	}
	spans := make([]span, 0, len(files))
	for _, f := range files {
		off, err := f.DataOffset()
		if err != nil {
			return &EntryError{Name: f.Name, Err: fmt.Errorf("%w: %v", ErrCorrupt, err)}
		}
		if f.CompressedSize64 > uint64(size) || off < 0 || off > size-int64(f.CompressedSize64) {
			return &EntryError{Name: f.Name, Err: fmt.Errorf("%w: data lies outside the archive", ErrCorrupt)}
		}
		if f.CompressedSize64 == 0 {
			continue
		}
		spans = append(spans, span{off, off + int64(f.CompressedSize64), f.Name})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return &EntryError{Name: spans[i].name, Err: fmt.Errorf("%w: shares data with %q", ErrOverlap, spans[i-1].name)}
		}
	}
	return nil
}

// inflate reads an entry to the end and returns its size, never more than
// limit+1 bytes.
func inflate(f *zip.File, limit int64) (int64, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, io.LimitReader(rc, limit+1))
	if err != nil {
		return n, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if n > limit {
		return n, fmt.Errorf("%w: more than %s uncompressed", ErrTooLarge, byteCount(limit))
	}
	if uint64(n) != f.UncompressedSize64 {
		return n, fmt.Errorf("%w: inflates to %d bytes, %d declared", ErrCorrupt, n, f.UncompressedSize64)
	}
	return n, nil
}

// declaredEntries reads the entry count from the end-of-central-directory
// record (following the zip64 locator when there is one). ok is false when
// the record cannot be found; archive/zip then reports the problem.
func declaredEntries(r io.ReaderAt, size int64) (n uint64, ok bool) {
	const eocdLen, maxComment = 22, 0xffff
	tailLen := min(size, eocdLen+maxComment)
	tail := make([]byte, tailLen)
	if _, err := r.ReadAt(tail, size-tailLen); err != nil && !errors.Is(err, io.EOF) {
		return 0, false
	}
	i := len(tail) - eocdLen
	for ; i >= 0; i-- {
		if binary.LittleEndian.Uint32(tail[i:]) == 0x06054b50 {
			break
		}
	}
	if i < 0 {
		return 0, false
	}
	count := uint64(binary.LittleEndian.Uint16(tail[i+10:]))
	if count != 0xffff {
		return count, true
	}
	// zip64: the locator sits just before the record and points at the
	// zip64 end record, whose total entry count is at offset 32.
	locAt := size - tailLen + int64(i) - 20
	if locAt < 0 {
		return 0, false
	}
	loc := make([]byte, 20)
	if _, err := r.ReadAt(loc, locAt); err != nil || binary.LittleEndian.Uint32(loc) != 0x07064b50 {
		return 0, false
	}
	recAt := binary.LittleEndian.Uint64(loc[8:])
	if recAt > uint64(size-56) {
		return 0, false
	}
	rec := make([]byte, 56)
	if _, err := r.ReadAt(rec, int64(recAt)); err != nil || binary.LittleEndian.Uint32(rec) != 0x06064b50 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(rec[32:]), true
}

func (a *Archive) buildDirs(explicit map[string]bool) {
	children := map[string]map[string]bool{".": {}}
	add := func(p string) {
		for p != "." {
			dir := path.Dir(p)
			if children[dir] == nil {
				children[dir] = map[string]bool{}
			}
			children[dir][path.Base(p)] = true
			p = dir
		}
	}
	for _, name := range a.names {
		add(name)
	}
	for dir := range explicit {
		add(dir)
		if children[dir] == nil {
			children[dir] = map[string]bool{}
		}
	}
	for dir, set := range children {
		names := make([]string, 0, len(set))
		for n := range set {
			names = append(names, n)
		}
		sort.Strings(names)
		a.dirs[dir] = names
	}
}

// FS returns the archive's content as a read-only file system, rooted at
// the project's top directory.
func (a *Archive) FS() fs.FS { return a.fsys }

// Files returns the paths of the regular files of the archive, sorted.
func (a *Archive) Files() []string { return append([]string(nil), a.names...) }

// Size returns the size of the archive in bytes.
func (a *Archive) Size() int64 { return a.size }

// UncompressedSize returns the bytes of all files together.
func (a *Archive) UncompressedSize() int64 { return a.total }

func byteCount(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
