package auditexport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

func events(from, n int) []store.AuditEvent {
	var evs []store.AuditEvent
	for i := from; i < from+n; i++ {
		evs = append(evs, store.AuditEvent{ID: fmt.Sprintf("ev%04d", i), At: clocktest.Epoch().Add(time.Duration(i) * time.Second),
			InstanceID: "i1", Actor: "user:admin", Action: "token.issue", Object: "apiKey/k1", Outcome: "success",
			Source: "127.0.0.1", RequestID: fmt.Sprintf("r%d", i)})
	}
	return evs
}

func readLines(t *testing.T, path string) []Line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: a line that is not JSON: %q", path, sc.Text())
		}
		out = append(out, l)
	}
	return out
}

// The file sink writes every event as a JSON line, rotates before a file
// would pass the size, keeps the newest Keep rotated files and deletes
// older ones; no line is split.
func TestFileExportRotatesAndKeeps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit", "audit.jsonl")
	e, err := New(Options{Target: "file:" + path, MaxBytes: 1000, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 { // one at a time and in bunches
		if i%2 == 0 {
			e.Export(events(i*3, 3))
		} else {
			e.Export(events(i*3, 1))
			e.Export(events(i*3+1, 2))
		}
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, %v; want mode 0600", st, err)
	}
	if _, err := os.Stat(path + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a third rotated file is kept (%v); want two", err)
	}
	var ids []string
	for _, p := range []string{path + ".2", path + ".1", path} {
		st, err := os.Stat(p)
		if err != nil || st.Size() > 1000 {
			t.Fatalf("%s: %v, %d bytes; want at most 1000", p, err, st.Size())
		}
		for _, l := range readLines(t, p) {
			ids = append(ids, l.ID)
		}
	}
	// The kept files hold the newest events, in order, with nothing
	// missing between them.
	all := events(0, 120)
	want := []string{}
	for _, ev := range all[len(all)-len(ids):] {
		want = append(want, ev.ID)
	}
	if len(ids) < 10 || !slices.Equal(ids, want) {
		t.Fatalf("kept files hold %v; want the newest events in order %v", ids, want)
	}
	last := readLines(t, path)
	if l := last[len(last)-1]; l.ID != "ev0119" || l.Time != all[119].At.UTC().Format(time.RFC3339Nano) || l.InstanceID != "i1" || l.Action != "token.issue" || l.RequestID != "r119" {
		t.Fatalf("last line %+v", l)
	}
}

// flaky is a stdout that fails or blocks until told otherwise.
type flaky struct {
	mu   sync.Mutex
	fail bool
	buf  bytes.Buffer
}

func (f *flaky) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return 0, errors.New("disk full")
	}
	return f.buf.Write(p)
}

func (f *flaky) set(fail bool) {
	f.mu.Lock()
	f.fail = fail
	f.mu.Unlock()
}

func (f *flaky) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.String()
}

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *syncLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// A failing sink never blocks Export (the caller's write was acknowledged
// already): events wait in the queue, then are counted as left out; when
// the sink works again the export goes on and the log says which time
// range to read back from the store.
func TestFailingExportNeverBlocksAndSaysWhatItLeftOut(t *testing.T) {
	out := &flaky{fail: true}
	var logs syncLog
	e, err := New(Options{Target: "stdout", Stdout: out, Queue: 10, Retry: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	e.Export(events(0, 1)) // the writer takes it and retries it
	for !strings.Contains(logs.String(), "cannot write") {
		time.Sleep(time.Millisecond)
	}
	e.Export(events(1, 100)) // returns at once: 10 queue, the rest are left out
	_, dropped, queued := e.Stats()
	if dropped != 90 || queued != 10 {
		t.Fatalf("dropped %d, queued %d; want 90 and 10", dropped, queued)
	}
	if !strings.Contains(logs.String(), "queue is full") {
		t.Fatalf("no log of the full queue:\n%s", logs.String())
	}
	out.set(false)
	for {
		if exported, _, _ := e.Stats(); exported == 11 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for !strings.Contains(logs.String(), "left out of the export; read them") {
		time.Sleep(time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(out.text()), "\n")
	if len(lines) != 11 || !strings.Contains(lines[0], `"id":"ev0000"`) || !strings.Contains(lines[10], `"id":"ev0010"`) {
		t.Fatalf("exported %d lines: %v", len(lines), lines)
	}
	// The events left out were 11 … 100: the log names that range.
	want := "since=" + clocktest.Epoch().Add(11*time.Second).UTC().Format(time.RFC3339Nano)
	if l := logs.String(); !strings.Contains(l, "events=90") || !strings.Contains(l, want) || !strings.Contains(l, "GET /api/v1/audit?since=") {
		t.Fatalf("the log does not say which events to read back (%s):\n%s", want, l)
	}
}

func TestCheckTarget(t *testing.T) {
	for _, ok := range []string{"stdout", "file:/var/log/sluice/audit.jsonl", "file:audit.jsonl"} {
		if err := CheckTarget(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "file:", "stderr", "/tmp/x", "syslog://x"} {
		if err := CheckTarget(bad); err == nil || !strings.Contains(err.Error(), "stdout or file:PATH") {
			t.Errorf("%q: %v; want an error naming the forms", bad, err)
		}
	}
}
