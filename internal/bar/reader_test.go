package bar

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
)

// entry describes one member of a hand-made test archive.
type entry struct {
	name string
	data string
	mode fs.FileMode // 0: regular 0644
	// raw, when set, writes data already deflated with these declared sizes
	raw    []byte
	size   uint64
	crc    uint32
	flags  uint16
	method uint16 // 0: deflate (see store)
	store  bool
}

func makeZip(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		hdr := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.method != 0 {
			hdr.Method = e.method
		}
		if e.store {
			hdr.Method = zip.Store
		}
		if e.mode != 0 {
			hdr.SetMode(e.mode)
		} else {
			hdr.SetMode(0o644)
		}
		hdr.Flags |= e.flags
		if e.raw != nil {
			hdr.CompressedSize64 = uint64(len(e.raw))
			hdr.UncompressedSize64 = e.size
			hdr.CRC32 = e.crc
			w, err := zw.CreateRaw(hdr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(e.raw); err != nil {
				t.Fatal(err)
			}
			continue
		}
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func deflate(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

// duplicateCentralRecord appends a copy of the first central-directory
// record under another name of the same length, so that two entries share
// one local file: the overlapping-entries zip bomb.
func duplicateCentralRecord(t *testing.T, z []byte, newName string) []byte {
	t.Helper()
	eocd := bytes.LastIndex(z, []byte{0x50, 0x4b, 0x05, 0x06})
	if eocd < 0 {
		t.Fatal("no end record")
	}
	cdSize := binary.LittleEndian.Uint32(z[eocd+12:])
	cdOff := binary.LittleEndian.Uint32(z[eocd+16:])
	rec := z[cdOff:]
	nameLen := int(binary.LittleEndian.Uint16(rec[28:]))
	extraLen := int(binary.LittleEndian.Uint16(rec[30:]))
	commentLen := int(binary.LittleEndian.Uint16(rec[32:]))
	recLen := 46 + nameLen + extraLen + commentLen
	if len(newName) != nameLen {
		t.Fatal("name length must match")
	}
	dup := append([]byte(nil), rec[:recLen]...)
	copy(dup[46:], newName)
	var out []byte
	out = append(out, z[:int(cdOff)+int(cdSize)]...)
	out = append(out, dup...)
	end := append([]byte(nil), z[eocd:]...)
	binary.LittleEndian.PutUint16(end[8:], binary.LittleEndian.Uint16(end[8:])+1)
	binary.LittleEndian.PutUint16(end[10:], binary.LittleEndian.Uint16(end[10:])+1)
	binary.LittleEndian.PutUint32(end[12:], cdSize+uint32(recLen))
	return append(out, end...)
}

func TestReadRefuses(t *testing.T) {
	zeros := bytes.Repeat([]byte{0}, 4<<20)
	small := &Limits{MaxFileSize: 1 << 10, MaxTotalSize: 3 << 10, MaxEntries: 5}
	storedOK := makeZip(t, entry{name: "a.txt", data: "hello world", store: true})
	corrupted := bytes.Replace(storedOK, []byte("hello world"), []byte("hellO world"), 1)

	tests := []struct {
		name    string
		zip     []byte
		lim     *Limits
		want    error
		wantMsg string // substring of the error message
	}{
		{"not a zip", []byte("flow: hello\n"), nil, ErrNotZip, "not a zip archive"},
		{"empty input", nil, nil, ErrNotZip, "empty"},
		{"truncated zip", storedOK[:len(storedOK)-10], nil, ErrNotZip, "not a zip"},
		{"no entries", makeZip(t), nil, ErrInvalid, "no entries"},
		{"only directories", makeZip(t, entry{name: "flows/", mode: fs.ModeDir | 0o755}), nil, ErrInvalid, "no files"},
		{"absolute path", makeZip(t, entry{name: "/etc/passwd", data: "x"}), nil, ErrUnsafePath, `"/etc/passwd": unsafe path: absolute path`},
		{"drive letter", makeZip(t, entry{name: "C:/windows/x", data: "x"}), nil, ErrUnsafePath, "drive letter"},
		{"traversal", makeZip(t, entry{name: "../evil.yaml", data: "x"}), nil, ErrUnsafePath, "path traversal"},
		{"nested traversal", makeZip(t, entry{name: "flows/../../evil", data: "x"}), nil, ErrUnsafePath, "path traversal"},
		{"backslash", makeZip(t, entry{name: `flows\..\..\evil`, data: "x"}), nil, ErrUnsafePath, "backslash"},
		{"empty element", makeZip(t, entry{name: "flows//a.yaml", data: "x"}), nil, ErrUnsafePath, "not a clean relative path"},
		{"dot element", makeZip(t, entry{name: "./a.yaml", data: "x"}), nil, ErrUnsafePath, "not a clean relative path"},
		{"control character", makeZip(t, entry{name: "a\x1b[2J.yaml", data: "x"}), nil, ErrUnsafePath, "control"},
		{"symlink", makeZip(t, entry{name: "flows/link", data: "/etc/passwd", mode: fs.ModeSymlink | 0o777}), nil, ErrSymlink, `"flows/link": symbolic links`},
		{"device", makeZip(t, entry{name: "dev", data: "", mode: fs.ModeDevice | 0o644}), nil, ErrSpecialFile, "regular files"},
		{"named pipe", makeZip(t, entry{name: "fifo", data: "", mode: fs.ModeNamedPipe | 0o644}), nil, ErrSpecialFile, "regular files"},
		{"duplicate", makeZip(t, entry{name: "a.yaml", data: "1"}, entry{name: "a.yaml", data: "2"}), nil, ErrDuplicate, `"a.yaml": duplicate entry`},
		{"case duplicate", makeZip(t, entry{name: "Flows/a.yaml", data: "1"}, entry{name: "flows/A.yaml", data: "2"}), nil, ErrDuplicate, "differs only in case"},
		{"file and directory", makeZip(t, entry{name: "flows", data: "1"}, entry{name: "flows/a.yaml", data: "2"}), nil, ErrDuplicate, "also the directory"},
		{"file and explicit directory", makeZip(t, entry{name: "flows", data: "1"}, entry{name: "flows/", mode: fs.ModeDir | 0o755}), nil, ErrDuplicate, "duplicate"},
		{"encrypted", makeZip(t, entry{name: "a.txt", data: "x", flags: 1}), nil, ErrEncrypted, "encrypted"},
		{"unknown method", makeZip(t, entry{name: "a.txt", raw: []byte("x"), size: 1, method: 12}), nil, ErrCorrupt, "compression method 12"},
		{"file over limit", makeZip(t, entry{name: "big.json", data: strings.Repeat("x", 2<<10)}), small, ErrTooLarge, `"big.json": too large`},
		{"total over limit", makeZip(t,
			entry{name: "1", data: strings.Repeat("x", 1000)}, entry{name: "2", data: strings.Repeat("x", 1000)},
			entry{name: "3", data: strings.Repeat("x", 1000)}, entry{name: "4", data: strings.Repeat("x", 1000)}),
			small, ErrTooLarge, "add up to more than"},
		{"too many entries", makeZip(t, entry{name: "1"}, entry{name: "2"}, entry{name: "3"}, entry{name: "4"}, entry{name: "5"}, entry{name: "6"}), small, ErrTooMany, "6 entries, the limit is 5"},
		{"archive over limit", storedOK, &Limits{MaxArchiveSize: 10}, ErrTooLarge, "archive is"},
		{"deflate bomb ratio", makeZip(t, entry{name: "bomb.json", raw: deflate(t, zeros), size: uint64(len(zeros)), crc: crc32.ChecksumIEEE(zeros)}), nil, ErrCompression, "more than 200×"},
		{"size lie", makeZip(t, entry{name: "liar.json", raw: deflate(t, zeros), size: 10, crc: crc32.ChecksumIEEE(zeros[:10])}), nil, ErrCorrupt, `"liar.json": corrupt entry`},
		{"bad checksum", corrupted, nil, ErrCorrupt, "checksum"},
		{"overlapping entries", duplicateCentralRecord(t, storedOK, "b.txt"), nil, ErrOverlap, "shares data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Read(bytes.NewReader(tt.zip), int64(len(tt.zip)), tt.lim)
			if err == nil {
				t.Fatalf("Read accepted the archive (%v)", a.Files())
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %q is not %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "bar: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestReadAcceptsAndServesFS(t *testing.T) {
	z := makeZip(t,
		entry{name: "sluice.yaml", data: "name: demo\n"},
		entry{name: "flows/", mode: fs.ModeDir | 0o755},
		entry{name: "flows/hello.yaml", data: "flow: hello\n"},
		entry{name: "schemas/order.json", data: `{"type":"object"}`, store: true},
		entry{name: "static/empty/", mode: fs.ModeDir | 0o755},
		entry{name: "static/deep/a/b/c.txt", data: strings.Repeat("abc", 1000)},
	)
	a, err := Read(bytes.NewReader(z), int64(len(z)), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"flows/hello.yaml", "schemas/order.json", "sluice.yaml", "static/deep/a/b/c.txt"}
	if got := a.Files(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Files() = %v, want %v", got, want)
	}
	if err := fstest.TestFS(a.FS(), append(want, "static/empty")...); err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(a.FS(), "flows/hello.yaml")
	if err != nil || string(b) != "flow: hello\n" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	if _, err := a.FS().Open("../sluice.yaml"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open(../sluice.yaml) error = %v, want ErrInvalid", err)
	}
	if _, err := a.FS().Open("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) error = %v, want ErrNotExist", err)
	}
	if a.UncompressedSize() != int64(len("name: demo\n")+len("flow: hello\n")+len(`{"type":"object"}`)+3000) {
		t.Errorf("UncompressedSize() = %d", a.UncompressedSize())
	}
}

func TestCompressibleFileBelowRatioFloorIsAccepted(t *testing.T) {
	// A highly compressible but small file (a JSON fixture full of
	// repeats) is not a bomb: the ratio only counts above RatioFloor.
	data := strings.Repeat(`{"a":1},`, 100000) // 800 KB
	z := makeZip(t, entry{name: "fixtures/big.json", data: data})
	if _, err := Read(bytes.NewReader(z), int64(len(z)), nil); err != nil {
		t.Fatal(err)
	}
}

func TestDeclaredEntries(t *testing.T) {
	z := makeZip(t, entry{name: "a", data: "1"}, entry{name: "b", data: "2"}, entry{name: "c", data: "3"})
	n, ok := declaredEntries(bytes.NewReader(z), int64(len(z)))
	if !ok || n != 3 {
		t.Fatalf("declaredEntries = %d, %v", n, ok)
	}
	if _, ok := declaredEntries(strings.NewReader("garbage"), 7); ok {
		t.Error("declaredEntries found a record in garbage")
	}
}

// TestReadLargeArchiveFromFile is the control plane's use: a large upload
// spooled to a temporary file is checked through io.ReaderAt without the
// reader holding it in memory.
func TestReadLargeArchiveFromFile(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 40 MB")
	}
	chunk := make([]byte, 20<<20)
	rand.NewChaCha8([32]byte{1}).Read(chunk) // incompressible, like images and archives
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range []string{"static/a.bin", "static/b.bin"} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(chunk)
	}
	w, _ := zw.Create("sluice.yaml")
	io.WriteString(w, "name: big\n")
	zw.Close()
	f, err := os.CreateTemp(t.TempDir(), "upload-*.bar")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	size := int64(buf.Len())
	buf = bytes.Buffer{}
	chunk = nil
	runtime.GC()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	a, err := Read(f, size, nil)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if a.UncompressedSize() != 40<<20+int64(len("name: big\n")) {
		t.Errorf("uncompressed size %d", a.UncompressedSize())
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("reading a %d-byte archive allocated %d bytes", size, alloc)
	}
}
