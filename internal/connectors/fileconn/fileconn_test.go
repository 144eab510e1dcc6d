package fileconn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/flow"
)

const waitLong = 60 * time.Second

type counters struct{ received, acked, retried, dead atomic.Int64 }

func (c *counters) Received()      { c.received.Add(1) }
func (c *counters) Acked()         { c.acked.Add(1) }
func (c *counters) Retried()       { c.retried.Add(1) }
func (c *counters) DeadLettered()  { c.dead.Add(1) }
func (c *counters) InFlight(d int) {}

func trigger(dir string) *flow.FileTrigger {
	return &flow.FileTrigger{Connection: &flow.Connection{Name: "inbox", Type: "file", URL: "file://" + filepath.ToSlash(dir)},
		Glob: "*.json", Poll: 10 * time.Millisecond, Delivery: flow.Delivery{MaxInFlight: 4, Attempts: 2, Backoff: time.Millisecond}}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// Two runtimes poll the same directory: every file is processed exactly
// once, ends in done/ or failed/, and what does not match the glob stays.
func TestFilesProcessedOnceAndMoved(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	seen := map[string]int{}
	var cnt counters
	h := func(_ context.Context, m *flow.Message) (*flow.Response, error) {
		name := m.Source["name"].(string)
		mu.Lock()
		seen[name]++
		mu.Unlock()
		if strings.HasPrefix(name, "bad") {
			return nil, errors.New("refused " + name)
		}
		if m.Body.(map[string]any)["n"] == nil {
			t.Errorf("body %v", m.Body)
		}
		return &flow.Response{Status: 200}, nil
	}
	var cs []*Consumer
	for range 2 {
		c, err := Start(context.Background(), trigger(dir), "test/files", time.Hour, h, &cnt, nil)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	const n = 30
	for i := range n {
		name := fmt.Sprintf("ok-%02d.json", i)
		if i%10 == 0 {
			name = fmt.Sprintf("bad-%02d.json", i)
		}
		// Written under a dot name, then renamed: a file appears whole.
		tmp := filepath.Join(dir, "."+name)
		os.WriteFile(tmp, fmt.Appendf(nil, `{"n": %d}`, i), 0o644)
		os.Rename(tmp, filepath.Join(dir, name))
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	eventually(t, "every file handled", func() bool { return cnt.acked.Load()+cnt.dead.Load() == n })
	for _, c := range cs {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		c.Drain(ctx)
		cancel()
	}
	mu.Lock()
	for name, k := range seen {
		want := 1
		if strings.HasPrefix(name, "bad") {
			want = 2 // two attempts, in one runtime
		}
		if k != want {
			t.Errorf("%s ran %d times, want %d", name, k, want)
		}
	}
	mu.Unlock()
	if got := len(names(t, filepath.Join(dir, Done))); got != n-3 {
		t.Errorf("done/ has %d files, want %d", got, n-3)
	}
	failed := names(t, filepath.Join(dir, Failed))
	if len(failed) != 6 { // three files and their .error
		t.Errorf("failed/ = %v", failed)
	}
	msg, _ := os.ReadFile(filepath.Join(dir, Failed, "bad-00.json.error"))
	if !strings.Contains(string(msg), "failed after 2 attempts: refused bad-00.json") {
		t.Errorf("error file %q", msg)
	}
	if left := names(t, dir); len(left) != 1 || left[0] != "notes.txt" {
		t.Errorf("left in the directory: %v", left)
	}
	if p := names(t, filepath.Join(dir, Processing)); len(p) != 0 {
		t.Errorf("left in processing/: %v", p)
	}
}

// A file left in processing/ by a runtime that died is given back once
// its claim is stale, and processed.
func TestStaleClaimIsProcessedAgain(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, Processing), 0o750)
	p := filepath.Join(dir, Processing, "left.json")
	os.WriteFile(p, []byte(`{"n": 1}`), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	var cnt counters
	c, err := Start(context.Background(), trigger(dir), "test/files", time.Minute, func(context.Context, *flow.Message) (*flow.Response, error) {
		return &flow.Response{Status: 200}, nil
	}, &cnt, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stale file processed", func() bool { return cnt.acked.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c.Drain(ctx)
	if d := names(t, filepath.Join(dir, Done)); len(d) != 1 || d[0] != "left.json" {
		t.Fatalf("done/ = %v", d)
	}
}
