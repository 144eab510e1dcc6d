package bar

import (
	"bytes"
	"io/fs"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the reader. It must never panic, and
// whatever it accepts must be fully readable through FS within the limits.
//
//	go test ./internal/bar -run '^$' -fuzz FuzzRead -fuzztime 1m
func FuzzRead(f *testing.F) {
	f.Add([]byte("not a zip"))
	f.Add(makeZip(f, entry{name: "sluice.yaml", data: "name: demo\n"}, entry{name: "flows/a.yaml", data: "flow: a\n"}))
	f.Add(makeZip(f, entry{name: "../x", data: "x"}))
	f.Add(makeZip(f, entry{name: "a", data: "1", store: true}, entry{name: "b/", mode: fs.ModeDir | 0o755}))
	lim := &Limits{MaxFileSize: 1 << 16, MaxTotalSize: 1 << 18, MaxEntries: 64, MaxArchiveSize: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Read(bytes.NewReader(data), int64(len(data)), lim)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		var total int64
		err = fs.WalkDir(a.FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			b, err := fs.ReadFile(a.FS(), p)
			if err != nil {
				return err
			}
			total += int64(len(b))
			return nil
		})
		if err != nil {
			t.Fatalf("accepted archive is not readable: %v", err)
		}
		if total != a.UncompressedSize() || total > lim.MaxTotalSize {
			t.Fatalf("read %d bytes, archive claims %d (limit %d)", total, a.UncompressedSize(), lim.MaxTotalSize)
		}
	})
}
