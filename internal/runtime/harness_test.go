package runtime_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
)

// The tests in this package's external test files run the real binary:
// TestMain builds it once, each test starts `sluice runtime` as a child
// process and talks to it over HTTP, as the control plane and clients will.

var sluiceBin string

// adminToken is the admin credential every test runtime is started with
// (in adminTokenFile), unless a test passes --admin-token-file itself.
const adminToken = "test-admin-credential"

var adminTokenFile string

// waitLong bounds every wait for the child process. It is generous because
// the machine may be loaded (a race-enabled binary on two busy cores); no
// test asserts how long anything took.
const waitLong = 90 * time.Second

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-runtime-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	args := []string{"build", "-o", sluiceBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/sluice-dev/sluice/cmd/sluice")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	adminTokenFile = filepath.Join(dir, "admin.token")
	if err := os.WriteFile(adminTokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildBAR packages a project directory with the CLI, as a developer does.
func buildBAR(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(dir)+".bar")
	cmd := exec.Command(sluiceBin, "bar", "build", dir, "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sluice bar build %s: %v\n%s", dir, err, b)
	}
	return out
}

// buildBARInProcess is for projects the CLI would refuse or that tests
// make on the fly.
func buildBARInProcess(t *testing.T, dir string) string {
	t.Helper()
	data, _, err := bar.Build(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(dir)+".bar")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// configDir writes a --config-dir from path → content.
func configDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// lockedBuffer collects the child's stderr; the reader goroutine writes,
// tests read.
type lockedBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan map[string]any
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running `sluice runtime`.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	log    *lockedBuffer
	done   chan struct{}
	err    error // Wait's result, valid after done
	listen string
	admin  string
}

// startRuntime starts the runtime and waits until it logs that it is ready
// (or exits, which fails the test).
func startRuntime(t *testing.T, args ...string) *proc {
	t.Helper()
	p := launch(t, args...)
	select {
	case ready := <-p.log.lines:
		p.listen, _ = ready["listen"].(string)
		p.admin, _ = ready["admin"].(string)
		adminHosts.Store(p.admin, true)
	case <-p.done:
		t.Fatalf("runtime exited before ready: %v\n%s", p.err, p.log)
	case <-time.After(waitLong):
		t.Fatalf("runtime not ready after %s\n%s", waitLong, p.log)
	}
	return p
}

// launch starts the runtime without waiting for it.
func launch(t *testing.T, args ...string) *proc {
	t.Helper()
	full := append([]string{"runtime"}, args...)
	if !hasFlag(args, "--listen") {
		full = append(full, "--listen", "127.0.0.1:0")
	}
	if !hasFlag(args, "--admin-listen") {
		full = append(full, "--admin-listen", "127.0.0.1:0")
	}
	// The tests' backends are httptest servers on loopback, which the
	// egress policy closes by default.
	if !hasFlag(args, "--egress-allow") {
		full = append(full, "--egress-allow", "127.0.0.1")
	}
	if !hasFlag(args, "--admin-token-file") {
		full = append(full, "--admin-token-file", adminTokenFile)
	}
	cmd := exec.Command(sluiceBin, full...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, log: &lockedBuffer{lines: make(chan map[string]any, 1)}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.log.mu.Lock()
			p.log.buf.Write(line)
			p.log.buf.WriteByte('\n')
			p.log.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "runtime ready" {
				select {
				case p.log.lines <- rec:
				default:
				}
			}
		}
	}()
	go func() {
		<-copied
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if strings.Contains(p.log.String(), "WARNING: DATA RACE") {
			t.Errorf("the runtime process reported a data race")
		}
		if t.Failed() {
			t.Logf("runtime log:\n%s", p.log)
		}
	})
	return p
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitLong):
		p.t.Fatalf("runtime did not exit within %s\n%s", waitLong, p.log)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatalf("waiting for runtime: %v", p.err)
	return -1
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

func (p *proc) url(path string) string      { return "http://" + p.listen + path }
func (p *proc) adminURL(path string) string { return "http://" + p.admin + path }

var client = &http.Client{Timeout: waitLong, Transport: adminAuth{http.DefaultTransport}}

// adminHosts are the admin listeners of the test runtimes: requests to
// them carry the admin credential unless the test set Authorization.
var adminHosts sync.Map

type adminAuth struct{ next http.RoundTripper }

func (a adminAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, ok := adminHosts.Load(req.URL.Host); ok && req.Header.Get("Authorization") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+adminToken)
	}
	return a.next.RoundTrip(req)
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, a.body)
	}
	return m
}

func do(t *testing.T, method, url string, body io.Reader, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func get(t *testing.T, url string) answer { t.Helper(); return do(t, "GET", url, nil) }

// eventually polls cond until it holds; the deadline is only a guard
// against hanging forever, not a performance assertion.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inFlight reads the admin listing's in-flight count of a flow.
func (p *proc) inFlight(t *testing.T, name string) int {
	t.Helper()
	var listing struct {
		Flows []struct {
			Name     string `json:"name"`
			InFlight int    `json:"inFlight"`
		} `json:"flows"`
	}
	a := get(t, p.adminURL("/flows"))
	if err := json.Unmarshal(a.body, &listing); err != nil {
		t.Fatal(err)
	}
	for _, f := range listing.Flows {
		if f.Name == name {
			return f.InFlight
		}
	}
	t.Fatalf("flow %s not listed", name)
	return 0
}

// receive waits for a value on ch, failing the test if none comes.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLong):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
