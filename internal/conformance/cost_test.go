package conformance

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// TestCraftedBARsCostLittle uploads the BARs of issue 11 that made the
// control plane spend gigabytes — jq programs nested 500,000 deep, an
// object nested 150,000 deep — and the largest documents the limits leave
// through, three at a time, to a real `sluice serve`. Each is refused with
// a 422 naming file and line (or, over the validation limit, a 503 with
// Retry-After), and the process's peak resident set (VmHWM in
// /proc/PID/status, which the kernel keeps, so a short spike between two
// samples is not missed) grows by at most 64 MB. RSS is measured rather
// than the Go heap because the stack overflow and the goroutine stacks
// these programs caused are outside the heap.
func TestCraftedBARsCostLittle(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs Linux /proc to read the process's peak RSS")
	}
	// Three validations at once, as the issue measured them.
	srv := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none", "--max-bar-validations", "3"}})
	admin := srv.Admin(t)
	// The budget holds with the race detector too, whose shadow memory
	// multiplies what the process holds.
	const budget = 64 << 20

	// A valid upload first, so the baseline includes the upload path.
	if code, body := putBAR(t, admin, "warmup", buildBAR(t, "hello")); code != http.StatusCreated {
		t.Fatalf("warm-up upload: %d %s", code, body)
	}
	// Reset the peak to the current resident set (proc(5), clear_refs
	// "5"): the first start's password hashing (argon2id, 64 MiB) left a
	// peak that would hide everything below it.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", srv.Pid()), []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the process's peak RSS: %v", err)
	}
	before := peakRSS(t, srv.Pid())

	flow := func(prog string) string { return "flow: a\nsteps:\n  - map: '" + prog + "'\n" }
	nest := func(open, inner, close string, n int) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	wide := "openapi: 3.1.0\nx: [\n" + strings.Repeat("[1, 1, 1, 1, 1],\n", 3_400) + "]\n"
	bars := []struct {
		name  string
		files map[string]string
		want  string // in the 422's details
	}{
		{"jq-array", map[string]string{"flows/a.yaml": flow(nest("[", ".", "]", 500_000))}, "flows/a.yaml: the document has"},
		{"jq-parens", map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - map: |\n      " + nest("(", ".", ")", 500_000) + "\n"}, "flows/a.yaml:3:10: map#0: invalid jq: the program is 1000002 bytes"},
		{"jq-object", map[string]string{"flows/a.yaml": flow(nest("{a:", "1", "}", 150_000))}, "flows/a.yaml: the document has"},
		{"jq-deep-small", map[string]string{"flows/a.yaml": flow(nest("(", ".", ")", 20_000))}, "flows/a.yaml:3:10: map#0: invalid jq: the program is nested more than 1000 deep"},
		{"json-object", map[string]string{"flows/a.yaml": flow("."), "schemas/s.json": nest(`{"a":`, "1", "}", 150_000)}, "schemas/s.json"},
		{"json-deep", map[string]string{"flows/a.yaml": flow("."), "jq/d.json": nest(`{"a":`, "1", "}", 10_000)}, "jq/d.json:1:641: invalid JSON: nested more than 128 deep"},
		{"yaml-deep", map[string]string{"flows/a.yaml": "flow: a\nsteps: [{map: .}]\ndescription: " + nest("[", "", "]", 9_000) + "\n"}, "flows/a.yaml:3:141: nested more than 128 deep"},
		// Documents just inside the per-file limit: two fit the
		// project's limit, the third breaks it.
		{"yaml-wide", map[string]string{"flows/a.yaml": flow("."), "openapi/a.yaml": wide, "openapi/b.yaml": wide, "openapi/c.yaml": wide},
			"the project's YAML and JSON documents have more than 48000 structural characters"},
	}
	payloads := make([][]byte, len(bars))
	for i, b := range bars {
		payloads[i] = zipProject(t, b.files)
		if len(payloads[i]) >= 1<<20 {
			t.Fatalf("%s: BAR is %d bytes, the test is about BARs under 1 MB", b.name, len(payloads[i]))
		}
	}
	// Three rounds of every BAR, three uploads at a time.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 3)
	var mu sync.Mutex
	refused, busy := 0, 0
	for round := range 3 {
		for i, b := range bars {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				code, body, hdr := putBARHeader(t, admin, fmt.Sprintf("%s-%d", b.name, round), payloads[i])
				mu.Lock()
				defer mu.Unlock()
				switch code {
				case http.StatusUnprocessableEntity:
					refused++
					var e struct{ Details []string }
					_ = json.Unmarshal(body, &e)
					if !strings.Contains(strings.Join(e.Details, "\n"), b.want) {
						t.Errorf("%s: details lack %q: %.600s", b.name, b.want, body)
					}
				case http.StatusServiceUnavailable:
					busy++
					if hdr.Get("Retry-After") == "" {
						t.Errorf("%s: 503 without Retry-After", b.name)
					}
				default:
					t.Errorf("%s: %d %.300s", b.name, code, body)
				}
			}()
		}
	}
	wg.Wait()
	after := peakRSS(t, srv.Pid())
	t.Logf("peak RSS %d MB before, %d MB after (%d refused, %d busy); budget %d MB", before>>20, after>>20, refused, busy, budget>>20)
	if refused == 0 {
		t.Fatal("no upload was validated")
	}
	if after-before > budget {
		t.Errorf("peak RSS grew by %d MB, more than %d MB", (after-before)>>20, budget>>20)
	}
	// Nothing was stored.
	code, body := admin.Do("GET", "/api/v1/bar-files", nil)
	var list struct{ BARFiles []struct{ Name string } }
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list.BARFiles) != 1 {
		t.Errorf("BAR list after the refusals: %d %s", code, body)
	}
}

func zipProject(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	if _, ok := files["sluice.yaml"]; !ok {
		files["sluice.yaml"] = "name: crafted\n"
	}
	for name, data := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func putBAR(t *testing.T, c *servertest.Client, name string, data []byte) (int, []byte) {
	code, body, _ := putBARHeader(t, c, name, data)
	return code, body
}

func putBARHeader(t *testing.T, c *servertest.Client, name string, data []byte) (int, []byte, http.Header) {
	req, err := http.NewRequest("PUT", c.URL+"/api/v1/bar-files/"+name, bytes.NewReader(data))
	if err != nil {
		t.Error(err)
		return 0, nil, nil
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("X-IBM-Client-Id", c.ClientID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// peakRSS reads VmHWM, the process's peak resident set, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
