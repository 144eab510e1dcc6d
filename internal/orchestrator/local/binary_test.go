package local

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// copyFile copies the built sluice binary to dst, as `go run` leaves one
// in a temporary directory it deletes on exit.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// Runtimes keep a working binary when the one the control plane ran from
// is deleted (`go run` exiting) or replaced: the backend runs them from a
// content-addressed copy in its directory, so a crashed replica restarts
// and a new backend (a restarted control plane) re-adopts and restarts.
func TestRuntimesOutliveTheBinaryTheyWereStartedFrom(t *testing.T) {
	e := newEnv(t)
	goBuild := filepath.Join(t.TempDir(), "go-build123", "exe")
	os.MkdirAll(goBuild, 0o700)
	tmpBin := filepath.Join(goBuild, "sluice")
	copyFile(t, servertest.Binary(t), tmpBin)

	newBackend := func() *Backend {
		b, err := New(Options{Dir: e.dir, Binary: tmpBin, Ports: e.ports, StopTimeout: 20 * time.Second,
			Log: slog.New(slog.NewTextHandler(e.log, nil)), Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	b := newBackend()
	if dir := filepath.Dir(b.binary); dir != filepath.Join(e.dir, binDir) || !strings.HasPrefix(filepath.Base(b.binary), "sluice-") {
		t.Fatalf("runtimes run from %s; want a copy in %s", b.binary, filepath.Join(e.dir, binDir))
	}
	installed := b.binary
	hello, _ := testBARs(t)
	if _, err := b.Apply(context.Background(), deployment(1, 1, hello)); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, b, 1, 1)

	// `go run` exits: its binary is gone. A crash is still restarted.
	if err := os.RemoveAll(filepath.Dir(goBuild)); err != nil {
		t.Fatal(err)
	}
	victim := pids(b, testKey)[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the crash to be noticed", func() bool { return observe(t, b, testKey).Replicas == 0 })
	e.clock.Add(backoffMin)
	if o := waitSettled(t, b, 1, 1); o.Restarts != 1 {
		t.Fatalf("after a crash with the original binary deleted: %+v", o)
	}

	// A new control plane from a rebuilt (different) binary adopts the
	// runtime; the old copy goes, the running replica does not notice.
	b.Close()
	os.MkdirAll(goBuild, 0o700)
	copyFile(t, servertest.Binary(t), tmpBin)
	f, _ := os.OpenFile(tmpBin, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("rebuilt")) // other content, still a valid ELF executable
	f.Close()
	b2 := newBackend()
	if b2.binary == installed {
		t.Fatalf("a different binary was installed under the same name %s", installed)
	}
	if _, err := os.Stat(installed); !os.IsNotExist(err) {
		t.Errorf("the superseded copy %s is still there: %v", installed, err)
	}
	if o := observe(t, b2, testKey); o.AvailableReplicas != 1 {
		t.Fatalf("adopted runtime: %+v", o)
	}
	os.RemoveAll(filepath.Dir(goBuild))
	victim = pids(b2, testKey)[0]
	syscall.Kill(victim, syscall.SIGKILL)
	waitFor(t, "the crash to be noticed", func() bool { return observe(t, b2, testKey).Replicas == 0 })
	e.clock.Add(backoffMax)
	if o := waitSettled(t, b2, 1, 1); o.Restarts < 2 {
		t.Fatalf("restart by the new backend: %+v", o)
	}
	entries, _ := os.ReadDir(filepath.Join(e.dir, binDir))
	if len(entries) != 1 || filepath.Join(e.dir, binDir, entries[0].Name()) != b2.binary {
		t.Errorf("bin directory holds %v; want only %s", entries, b2.binary)
	}
}
