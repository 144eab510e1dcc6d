package server_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// logLines are the JSON lines a control plane wrote so far.
func logLines(t *testing.T, s *servertest.Server) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.Stderr()), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// waitLine waits for a log line that match accepts and returns it.
func waitLine(t *testing.T, s *servertest.Server, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, rec := range logLines(t, s) {
			if match(rec) {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %s in:\n%s", what, s.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func call(t *testing.T, method, url, requestID string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("X-Request-Id", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func accessLine(id string) func(map[string]any) bool {
	return func(r map[string]any) bool { return r["msg"] == "request" && r["request_id"] == id }
}

// The log level of a running control plane follows <data dir>/log-level on
// SIGHUP, and back to its start value when the file goes; every line a
// request causes carries its request id.
func TestLogLevelFollowsSIGHUPAndLinesCarryRequestIDs(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Args: []string{"--log-level", "warn"}})
	levelFile := filepath.Join(s.DataDir, "log-level")
	hup := func(content string, changed bool, want string) {
		t.Helper()
		n := len(logLines(t, s))
		if content == "" {
			if err := os.Remove(levelFile); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(levelFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		s.Signal(syscall.SIGHUP)
		msg := "log level changed"
		if !changed {
			msg = "log level not changed: the file does not hold a level"
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			lines := logLines(t, s)
			for _, r := range lines[min(n, len(lines)):] {
				if r["msg"] == msg && (!changed || r["to"] == want) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q line after SIGHUP with %q:\n%s", msg, content, s.Stderr())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A warn-level line of a request names the request: a bundle fetch
	// with a token that opens nothing.
	if code := call(t, "GET", s.URL+"/internal/v1/runtimes/nope/generations/1/bundle", "rid-warn-1"); code != 403 && code != 401 {
		t.Fatalf("bundle with no token: %d", code)
	}
	req, _ := http.NewRequest("GET", s.URL+"/internal/v1/runtimes/nope/generations/1/bundle", nil)
	req.Header.Set("X-Request-Id", "rid-warn-2")
	req.Header.Set("Authorization", "Bearer not-a-bundle-token")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("bundle with a foreign token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	waitLine(t, s, "runtime bundle refused with its request id", func(r map[string]any) bool {
		return r["msg"] == "runtime bundle refused" && r["request_id"] == "rid-warn-2"
	})

	// At warn, the access log (info) is silent.
	call(t, "GET", s.URL+"/healthz", "rid-before")
	hup("debug\n", true, "DEBUG")
	call(t, "GET", s.URL+"/healthz", "rid-debug")
	waitLine(t, s, "access line at debug", accessLine("rid-debug"))
	for _, r := range logLines(t, s) {
		if accessLine("rid-before")(r) {
			t.Errorf("an info line was written at level warn: %v", r)
		}
	}

	// A file that does not hold a level changes nothing.
	hup("loud", false, "DEBUG")
	call(t, "GET", s.URL+"/healthz", "rid-still-debug")
	waitLine(t, s, "access line still at debug", accessLine("rid-still-debug"))

	// No file: back to the start level (warn).
	hup("", true, "WARN")
	call(t, "GET", s.URL+"/healthz", "rid-after")
	hup("loud", false, "WARN") // a marker line written after the request's
	for _, r := range logLines(t, s) {
		if accessLine("rid-after")(r) {
			t.Errorf("an info line was written after the level went back to warn: %v", r)
		}
	}
	changed := 0
	for _, r := range logLines(t, s) {
		if r["msg"] == "log level changed" {
			changed++
			if r["source"] == nil || r["from"] == nil || r["to"] == nil {
				t.Errorf("the change line does not say from, to and why: %v", r)
			}
		}
	}
	if changed != 2 {
		t.Errorf("%d level changes logged, want 2", changed)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("stop after SIGHUPs: %v\n%s", err, s.Stderr())
	}
}
