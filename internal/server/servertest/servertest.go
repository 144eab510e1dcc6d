// Package servertest runs the real sluice binary as a control plane for
// tests: it builds the binary once per test process, starts `sluice serve`
// on a free port with a data dir of the test's own, reads the initial
// credentials, and offers helpers to get tokens and call the API over real
// HTTP. Only tests import it.
package servertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of a sluice binary built from this checkout (once
// per test process, with -race when the tests run with it).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "sluice-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sluice")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/sluice")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("servertest: %v", buildErr)
	}
	return binPath
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the sluice module")
	}
	return filepath.Dir(mod), nil
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Options configure a control plane.
type Options struct {
	DataDir string   // "" for a fresh temporary directory
	Store   string   // "" for SQLite in the data dir
	Listen  string   // "" for a free port
	Args    []string // more flags
	Env     []string // more environment, KEY=VALUE
}

// Server is one running `sluice serve` process.
type Server struct {
	t       testing.TB
	opts    Options
	URL     string
	DataDir string
	Creds   iam.InitialCredentials
	cmd     *exec.Cmd
	stdout  *SyncBuffer
	stderr  *SyncBuffer
	exited  chan struct{}
	waitErr error
}

// Start runs `sluice serve` and waits until it serves. The process is
// stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Listen == "" {
		opts.Listen = FreeAddr(t)
	}
	s := &Server{t: t, opts: opts, DataDir: opts.DataDir}
	s.start()
	t.Cleanup(func() {
		s.Stop()
		// Runtimes outlive their control plane on purpose (restart
		// safety), so a test's runtimes are ended here, by their data dir.
		KillProcessesUnder(s.opts.DataDir)
	})
	return s
}

func (s *Server) start() {
	s.t.Helper()
	args := append([]string{"serve", "--listen", s.opts.Listen, "--data-dir", s.opts.DataDir, "--log-format", "json"}, s.opts.Args...)
	if s.opts.Store != "" {
		args = append(args, "--store", s.opts.Store)
	}
	s.cmd = exec.Command(Binary(s.t), args...)
	s.cmd.Env = append(os.Environ(), s.opts.Env...)
	s.stdout, s.stderr = &SyncBuffer{}, &SyncBuffer{}
	pr, pw := io.Pipe()
	s.cmd.Stdout = io.MultiWriter(s.stdout, pw)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("servertest: start: %v", err)
	}
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = s.cmd.Wait()
		pw.Close()
		close(s.exited)
	}()
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "sluice: serving "); ok {
				serving <- strings.Fields(rest)[0]
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case s.URL = <-serving:
	case <-s.exited:
		s.t.Fatalf("servertest: sluice serve exited before serving: %v\nstdout:\n%s\nstderr:\n%s", s.waitErr, s.stdout, s.stderr)
	case <-time.After(60 * time.Second):
		s.t.Fatalf("servertest: sluice serve did not start within 60s\nstderr:\n%s", s.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(s.opts.DataDir, "initial-credentials.json")); err == nil {
		if err := json.Unmarshal(b, &s.Creds); err != nil {
			s.t.Fatalf("servertest: initial-credentials.json: %v", err)
		}
	}
}

// Pid is the process id of the running `sluice serve`, for tests that
// look at the process from outside (its memory in /proc).
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stdout and Stderr return what the process printed so far.
func (s *Server) Stdout() string { return s.stdout.String() }
func (s *Server) Stderr() string { return s.stderr.String() }

// Signal sends sig to the process (SIGHUP, to change its log level).
func (s *Server) Signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("servertest: signal %v: %v", sig, err)
	}
}

// Kill ends the process with SIGKILL, as a crash would.
func (s *Server) Kill() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-s.exited
}

// Stop ends the process with SIGTERM and waits for it; it returns the
// process's exit error (nil for a clean exit).
func (s *Server) Stop() error {
	select {
	case <-s.exited:
		return s.waitErr
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	return s.waitErr
}

// Restart starts the process again with the same options and data dir.
func (s *Server) Restart() {
	s.t.Helper()
	creds := s.Creds
	s.start()
	if s.Creds.InstanceID == "" {
		s.Creds = creds
	}
}

// Client holds a token and the client id to call the API with.
type Client struct {
	t        testing.TB
	URL      string
	ClientID string
	Token    string
	HTTP     *http.Client
}

// Exchange gets a token with the App Connect exchange.
func Exchange(url, clientID, clientSecret, instanceID, apiKey string) (*http.Response, []byte, error) {
	body, _ := json.Marshal(map[string]string{"apiKey": apiKey})
	req, _ := http.NewRequest("POST", url+"/api/v1/tokens", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-IBM-Client-Id", clientID)
	req.Header.Set("X-IBM-Client-Secret", clientSecret)
	req.Header.Set("x-ibm-instance-id", instanceID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// Admin returns a client holding a token of the initial admin.
func (s *Server) Admin(t testing.TB) *Client {
	t.Helper()
	return s.Login(t, s.Creds.ClientID, s.Creds.ClientSecret, s.Creds.InstanceID, s.Creds.APIKey)
}

// Login exchanges the given credentials for a token, failing the test if
// the exchange does not answer 200.
func (s *Server) Login(t testing.TB, clientID, clientSecret, instanceID, apiKey string) *Client {
	t.Helper()
	resp, body, err := Exchange(s.URL, clientID, clientSecret, instanceID, apiKey)
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token exchange: %d %s", resp.StatusCode, body)
	}
	var tok iam.TokenResponse
	if err := json.Unmarshal(body, &tok); err != nil {
		t.Fatal(err)
	}
	return &Client{t: t, URL: s.URL, ClientID: clientID, Token: tok.AccessToken, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Bind returns c aimed at this server, for a token minted elsewhere.
func (s *Server) Bind(t testing.TB, c *Client) *Client {
	return &Client{t: t, URL: s.URL, ClientID: c.ClientID, Token: c.Token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Do calls the API with the client's token; body, when not nil, is sent
// as JSON. It returns the status and the body.
func (c *Client) Do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("X-IBM-Client-Id", c.ClientID)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// PutBAR uploads content as the BAR file name with the client's token and
// returns the status and the body.
func (c *Client) PutBAR(name string, content []byte) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest("PUT", c.URL+"/api/v1/bar-files/"+name, bytes.NewReader(content))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("X-IBM-Client-Id", c.ClientID)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.t.Errorf("PUT BAR file %s: %v", name, err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads, for
// the output of processes a test runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// KillProcessesUnder SIGKILLs every process whose command line names dir:
// the runtimes a test's control plane started in its data dir.
func KillProcessesUnder(dir string) {
	entries, err := os.ReadDir("/proc")
	if err != nil || dir == "" {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
