package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

var (
	barsOnce        sync.Once
	helloBAR, hiBAR []byte
	barsErr         error
)

// testBARs builds examples/hello and a copy of it that greets with "Hi".
func testBARs(t testing.TB) (hello, hi []byte) {
	t.Helper()
	barsOnce.Do(func() {
		ctx := context.Background()
		src := filepath.Join("..", "..", "..", "examples", "hello")
		helloBAR, _, barsErr = bar.Build(ctx, src, nil)
		if barsErr != nil {
			return
		}
		tmp, err := os.MkdirTemp("", "sluice-hi-")
		if err != nil {
			barsErr = err
			return
		}
		defer os.RemoveAll(tmp)
		if err := exec.Command("cp", "-r", src+"/.", tmp).Run(); err != nil {
			barsErr = err
			return
		}
		flowFile := filepath.Join(tmp, "flows", "hello.yaml")
		data, err := os.ReadFile(flowFile)
		if err != nil {
			barsErr = err
			return
		}
		changed := strings.Replace(string(data), `greeting: "Hello, `, `greeting: "Hi, `, 1)
		if changed == string(data) {
			barsErr = fmt.Errorf("examples/hello changed: no greeting to edit")
			return
		}
		if err := os.WriteFile(flowFile, []byte(changed), 0o644); err != nil {
			barsErr = err
			return
		}
		hiBAR, _, barsErr = bar.Build(ctx, tmp, nil)
	})
	if barsErr != nil {
		t.Fatalf("building test BARs: %v", barsErr)
	}
	return helloBAR, hiBAR
}

const canary = "canary-Pw-5e1f09"

var testKey = orchestrator.Key{InstanceID: "inst-1", Name: "hello"}

func deployment(generation int64, replicas int, barData []byte) orchestrator.Deployment {
	sum := sha256.Sum256(barData)
	return orchestrator.Deployment{
		Key: testKey, UID: "uid-1", Generation: generation, Replicas: replicas,
		BARs: []orchestrator.BAR{{Name: "hello.bar", SHA256: hex.EncodeToString(sum[:]), Data: barData}},
		Configs: []orchestrator.ConfigFile{
			{Type: "setdbparms", Name: "backend", Data: []byte("backend sluice " + canary + "\n")},
			{Type: "serverconf", Name: "server", Data: []byte("shutdown:\n  timeout: 20s\n")},
		},
	}
}

// syncBuffer collects the backend's log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

type env struct {
	t     *testing.T
	dir   string
	clock *clocktest.Fake // drives backoff and hang decisions; tests advance it instead of waiting
	ports PortRange
	log   *syncBuffer
}

// newEnv makes a backend directory whose processes are all killed when the
// test ends, whatever state the test left them in.
func newEnv(t *testing.T) *env {
	t.Helper()
	testBARs(t)
	servertest.Binary(t)
	dir := t.TempDir()
	t.Cleanup(func() { killAll(t, dir) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	last := min(p+20, 65535)
	return &env{t: t, dir: filepath.Join(dir, "runtimes"), clock: clocktest.New(0), ports: PortRange{p, last}, log: &syncBuffer{}}
}

func (e *env) backend() *Backend {
	e.t.Helper()
	b, err := New(Options{
		Dir: e.dir, Binary: servertest.Binary(e.t), Ports: e.ports, StopTimeout: 20 * time.Second,
		Log: slog.New(slog.NewTextHandler(e.log, nil)), Now: e.clock.Now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { b.Close() })
	return b
}

// killAll kills every runtime process started under dir, found through the
// state files and checked by command line, and waits until they are gone.
func killAll(t testing.TB, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "runtimes", "*", "*", stateFile))
	var pids []int
	for _, f := range files {
		st, err := readState(filepath.Dir(f))
		if err != nil {
			continue
		}
		for _, g := range st.Gens {
			for _, p := range g.Procs {
				info, err := readProc(p.PID)
				if err == nil && strings.Contains(strings.Join(info.cmdline, " "), dir) {
					syscall.Kill(p.PID, syscall.SIGKILL)
					pids = append(pids, p.PID)
				}
			}
		}
	}
	for _, pid := range pids {
		for i := 0; i < 500; i++ {
			info, err := readProc(pid)
			if err != nil || info.state == 'Z' {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(pids) > 0 {
		t.Logf("killed %d runtime processes left behind", len(pids))
	}
}

// waitFor polls cond until it holds; the deadline only stops a hung test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func observe(t *testing.T, b *Backend, k orchestrator.Key) orchestrator.Observed {
	t.Helper()
	o, err := b.Observe(context.Background(), k)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	return o
}

// waitSettled waits until generation gen serves with replicas ready and
// nothing else runs.
func waitSettled(t *testing.T, b *Backend, gen int64, replicas int) orchestrator.Observed {
	t.Helper()
	var o orchestrator.Observed
	waitFor(t, fmt.Sprintf("generation %d with %d ready replicas", gen, replicas), func() bool {
		o = observe(t, b, testKey)
		return o.Generation == gen && o.AvailableReplicas == replicas && o.Replicas == replicas && !o.Progressing
	})
	return o
}

// pids lists the runtime's processes, all generations.
func pids(b *Backend, k orchestrator.Key) []int {
	b.mu.Lock()
	r := b.runtimes[k]
	b.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, g := range r.st.Gens {
		for _, p := range g.Procs {
			out = append(out, p.PID)
		}
	}
	return out
}

func alivePID(pid int) bool {
	info, err := readProc(pid)
	return err == nil && info.state != 'Z'
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestApplyServesAndMaterialisesPrivately(t *testing.T) {
	e := newEnv(t)
	b := e.backend()
	hello, _ := testBARs(t)

	begin := time.Now()
	o, err := b.Apply(context.Background(), deployment(1, 1, hello))
	if err != nil {
		t.Fatal(err)
	}
	if o.BaseURL == "" || !o.Progressing {
		t.Fatalf("Apply answered %+v; want a BaseURL and progressing", o)
	}
	var code int
	var body string
	waitFor(t, "the first 200", func() bool {
		resp, err := http.Get(o.BaseURL + "/hello/ada")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		code, body = resp.StatusCode, string(data)
		return code == http.StatusOK
	})
	t.Logf("Apply → first 200: %s", time.Since(begin))
	if !strings.Contains(body, "Hello, ada!") {
		t.Fatalf("answer %d %s", code, body)
	}
	o = waitSettled(t, b, 1, 1)
	if o.AdminURL == "" || o.Restarts != 0 || o.LastError != "" {
		t.Fatalf("observed %+v", o)
	}
	if c, _ := get(t, o.AdminURL+"/readyz"); c != http.StatusOK {
		t.Fatalf("admin /readyz answered %d", c)
	}
	// Traces need the runtime's admin credential, which only the backend
	// (and so the control plane) holds; no profiles without asking.
	if c, _ := get(t, o.AdminURL+"/trace/user/download"); c != http.StatusUnauthorized {
		t.Errorf("trace download without the admin credential: %d", c)
	}
	for path, want := range map[string]int{"/trace/user/download": http.StatusOK, "/debug/pprof/": http.StatusNotFound} {
		req, _ := http.NewRequest("GET", o.AdminURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+o.AdminToken.Reveal())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s with the admin credential: %d, want %d", path, resp.StatusCode, want)
		}
	}

	// Everything under the runtime's directory is private to this user.
	rtDir := filepath.Join(e.dir, testKey.InstanceID, testKey.Name)
	var files int
	err = filepath.Walk(rtDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	gens, _ := filepath.Glob(filepath.Join(rtDir, "gen-*"))
	if len(gens) != 1 {
		t.Fatalf("generation directories %v", gens)
	}
	cred, err := os.ReadFile(filepath.Join(gens[0], "config", "setdbparms", "backend.txt"))
	if err != nil || !strings.Contains(string(cred), canary) {
		t.Fatalf("materialised credential: %q, %v", cred, err)
	}
	if files < 4 { // state, log, BAR, two configurations
		t.Fatalf("only %d files materialised", files)
	}

	// Applying the same deployment again changes nothing.
	before := pids(b, testKey)
	if _, err := b.Apply(context.Background(), deployment(1, 1, hello)); err != nil {
		t.Fatal(err)
	}
	if err := b.runtimes[testKey].waitPasses(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if after := pids(b, testKey); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("re-applying restarted: pids %v → %v", before, after)
	}

	// No secret in the backend's log or its state file.
	state, _ := os.ReadFile(filepath.Join(rtDir, stateFile))
	if strings.Contains(e.log.String(), canary) || strings.Contains(string(state), canary) {
		t.Fatal("configuration data leaked into the backend's log or state")
	}
}

func TestScaleCrashRestartAndStop(t *testing.T) {
	e := newEnv(t)
	b := e.backend()
	hello, _ := testBARs(t)
	ctx := context.Background()

	if _, err := b.Apply(ctx, deployment(1, 2, hello)); err != nil {
		t.Fatal(err)
	}
	o := waitSettled(t, b, 1, 2)
	ps := pids(b, testKey)
	if len(ps) != 2 || ps[0] == ps[1] {
		t.Fatalf("pids %v; want two processes", ps)
	}
	if c, body := get(t, o.BaseURL+"/hello/x"); c != http.StatusOK {
		t.Fatalf("answer %d %s", c, body)
	}

	// kill -9 one replica: it is seen gone, backs off, and comes back
	// when the clock says so.
	victim := ps[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the crash to be noticed", func() bool {
		o = observe(t, b, testKey)
		return o.LastError != "" && o.Replicas == 1
	})
	if !strings.Contains(o.LastError, fmt.Sprint(victim)) || !strings.Contains(o.LastError, "killed") {
		t.Fatalf("last error %q; want the pid and how it died", o.LastError)
	}
	if o.Restarts != 0 {
		t.Fatalf("restarts %d before the backoff ran out", o.Restarts)
	}
	// A crash of a replica that served is a restart under way, not a
	// runtime that cannot run.
	if !o.Restarting || o.CannotRun != "" {
		t.Fatalf("after a crash: restarting %v, cannot run %q; want restarting", o.Restarting, o.CannotRun)
	}
	e.clock.Add(backoffMin)
	o = waitSettled(t, b, 1, 2)
	if o.Restarts != 1 || o.Restarting {
		t.Fatalf("restarts %d, restarting %v; want 1 and no longer restarting", o.Restarts, o.Restarting)
	}
	now := pids(b, testKey)
	if len(now) != 2 || !contains(now, ps[1]) || contains(now, victim) {
		t.Fatalf("pids %v after restarting %d (survivor %d)", now, victim, ps[1])
	}

	// Scale down to 1, then stop with replicas 0: processes go, so do the
	// materialised secrets; the port and the logs stay.
	if _, err := b.Apply(ctx, deployment(1, 1, hello)); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, b, 1, 1)
	if _, err := b.Apply(ctx, deployment(1, 0, hello)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the runtime to stop", func() bool {
		o = observe(t, b, testKey)
		return o.Replicas == 0 && !o.Progressing
	})
	for _, pid := range now {
		if alivePID(pid) {
			t.Fatalf("pid %d still runs with replicas 0", pid)
		}
	}
	rtDir := filepath.Join(e.dir, testKey.InstanceID, testKey.Name)
	if gens, _ := filepath.Glob(filepath.Join(rtDir, "gen-*")); len(gens) != 0 {
		t.Fatalf("generation directories left with replicas 0: %v", gens)
	}
	if _, err := os.Stat(filepath.Join(rtDir, "logs", "replica-0.log")); err != nil {
		t.Fatalf("logs gone with replicas 0: %v", err)
	}
	keys, err := b.List(ctx)
	if err != nil || len(keys) != 1 || keys[0] != testKey {
		t.Fatalf("List = %v, %v", keys, err)
	}

	// Back to 1: the same port.
	o2, err := b.Apply(ctx, deployment(1, 1, hello))
	if err != nil {
		t.Fatal(err)
	}
	if o2.BaseURL != o.BaseURL && o.BaseURL != "" {
		t.Fatalf("base URL moved: %s → %s", o.BaseURL, o2.BaseURL)
	}
	waitSettled(t, b, 1, 1)
	if c, _ := get(t, o2.BaseURL+"/hello/x"); c != http.StatusOK {
		t.Fatalf("answer %d after restarting", c)
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// loadLoop sends requests until stopped, from clients that keep
// connections alive and from clients that open one per request (those
// exercise the hand-over of connections queued on a closing listener).
type loadLoop struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	answers    map[string]int
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(url string, workers int) *loadLoop {
	l := &loadLoop{stop: make(chan struct{}), answers: map[string]int{}}
	for i := range workers {
		tr := &http.Transport{DisableKeepAlives: i%2 == 1, MaxIdleConnsPerHost: 4}
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		l.wg.Go(func() {
			defer tr.CloseIdleConnections()
			for n := 0; n < 1_000_000; n++ { // bounded, in case stop never comes
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err != nil {
					l.fail(fmt.Sprintf("keep-alive %v: %v", !tr.DisableKeepAlives, err))
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					l.fail(fmt.Sprintf("%d %s %v", resp.StatusCode, body, err))
					continue
				}
				l.ok.Add(1)
				l.mu.Lock()
				l.answers[string(body)]++
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *loadLoop) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, msg)
	}
	l.mu.Unlock()
}

// waitRequests waits until n more requests succeeded (or some failed).
func (l *loadLoop) waitRequests(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	waitFor(t, fmt.Sprintf("%d more requests", n), func() bool { return l.ok.Load() >= target || l.failed.Load() > 0 })
}

func TestRollingRedeployUnderLoadFailsNoRequest(t *testing.T) {
	e := newEnv(t)
	b := e.backend()
	hello, hi := testBARs(t)
	ctx := context.Background()

	o, err := b.Apply(ctx, deployment(1, 2, hello))
	if err != nil {
		t.Fatal(err)
	}
	waitSettled(t, b, 1, 2)
	load := startLoad(o.BaseURL+"/hello/load", 4)
	defer func() {
		close(load.stop)
		load.wg.Wait()
	}()
	load.waitRequests(t, 50)

	bars := [][]byte{hi, hello, hi}
	var before []int
	for i, data := range bars {
		gen := int64(i + 2)
		before = pids(b, testKey)
		begin := time.Now()
		if _, err := b.Apply(ctx, deployment(gen, 2, data)); err != nil {
			t.Fatal(err)
		}
		waitSettled(t, b, gen, 2)
		t.Logf("generation %d rolled over in %s (%d requests so far)", gen, time.Since(begin), load.ok.Load())
		load.waitRequests(t, 50)
		after := pids(b, testKey)
		for _, p := range before {
			if contains(after, p) || alivePID(p) {
				t.Fatalf("old replica %d still runs after the rollout", p)
			}
		}
	}
	close(load.stop)
	load.wg.Wait()
	load.stop = make(chan struct{}) // for the deferred close

	t.Logf("requests: %d ok, %d failed; answers %v", load.ok.Load(), load.failed.Load(), load.answers)
	if n := load.failed.Load(); n != 0 {
		t.Fatalf("%d requests failed during rolling redeploys, e.g. %v", n, load.errs)
	}
	if len(load.answers) != 2 {
		t.Fatalf("answers %v; want both generations' greetings", load.answers)
	}
	rtDir := filepath.Join(e.dir, testKey.InstanceID, testKey.Name)
	if gens, _ := filepath.Glob(filepath.Join(rtDir, "gen-*")); len(gens) != 1 {
		t.Fatalf("generation directories after the rollouts: %v", gens)
	}
	if o := observe(t, b, testKey); o.Restarts != 0 || o.LastError != "" {
		t.Fatalf("rollouts counted as crashes: %+v", o)
	}
}

func TestNewBackendAdoptsRunningProcesses(t *testing.T) {
	e := newEnv(t)
	b1 := e.backend()
	hello, _ := testBARs(t)
	ctx := context.Background()
	if _, err := b1.Apply(ctx, deployment(1, 2, hello)); err != nil {
		t.Fatal(err)
	}
	o1 := waitSettled(t, b1, 1, 2)
	ps := pids(b1, testKey)
	b1.Close() // the control plane goes away; its runtimes do not

	if c, _ := get(t, o1.BaseURL+"/hello/x"); c != http.StatusOK {
		t.Fatalf("runtime stopped serving without its control plane: %d", c)
	}
	b2 := e.backend()
	keys, err := b2.List(ctx)
	if err != nil || len(keys) != 1 || keys[0] != testKey {
		t.Fatalf("List = %v, %v", keys, err)
	}
	o2 := observe(t, b2, testKey)
	if o2.Generation != 1 || o2.AvailableReplicas != 2 || o2.Progressing || o2.BaseURL != o1.BaseURL {
		t.Fatalf("adopted runtime observed as %+v, was %+v", o2, o1)
	}
	if _, err := b2.Apply(ctx, deployment(1, 2, hello)); err != nil {
		t.Fatal(err)
	}
	if err := b2.runtimes[testKey].waitPasses(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if now := pids(b2, testKey); fmt.Sprint(now) != fmt.Sprint(ps) {
		t.Fatalf("adoption restarted the runtime: pids %v → %v", ps, now)
	}
	if o := observe(t, b2, testKey); o.Restarts != 0 || o.AvailableReplicas != 2 {
		t.Fatalf("observed %+v after adopting", o)
	}

	// An adopted replica (not a child of this backend) that dies is seen
	// through /proc and restarted.
	if err := syscall.Kill(ps[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the adopted replica's death to be noticed", func() bool { return observe(t, b2, testKey).Replicas == 1 })
	e.clock.Add(backoffMin)
	o := waitSettled(t, b2, 1, 2)
	if o.Restarts != 1 || contains(pids(b2, testKey), ps[1]) || !contains(pids(b2, testKey), ps[0]) {
		t.Fatalf("after killing adopted %d: %+v pids %v", ps[1], o, pids(b2, testKey))
	}
}

func TestAdoptionIgnoresReusedPID(t *testing.T) {
	e := newEnv(t)
	b1 := e.backend()
	hello, _ := testBARs(t)
	ctx := context.Background()
	if _, err := b1.Apply(ctx, deployment(1, 1, hello)); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, b1, 1, 1)
	b1.Close()
	real := pids(b1, testKey)[0]
	syscall.Kill(real, syscall.SIGKILL)
	waitFor(t, "the runtime to die", func() bool { return !alivePID(real) })

	// Another program now has a pid the state file names, as after a
	// reboot or pid wrap-around; it even has the start time on record.
	sleeper := exec.Command("sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	info, err := readProc(sleeper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	rtDir := filepath.Join(e.dir, testKey.InstanceID, testKey.Name)
	st, err := readState(rtDir)
	if err != nil {
		t.Fatal(err)
	}
	st.Gens[0].Procs[0].PID = sleeper.Process.Pid
	st.Gens[0].Procs[0].StartTime = info.startTime
	if err := writeState(rtDir, st); err != nil {
		t.Fatal(err)
	}

	b2 := e.backend()
	o := observe(t, b2, testKey)
	if o.Replicas != 0 || o.AvailableReplicas != 0 {
		t.Fatalf("a foreign pid was taken for a replica: %+v", o)
	}
	e.clock.Add(backoffMin)
	waitSettled(t, b2, 1, 1)
	if !alivePID(sleeper.Process.Pid) {
		t.Fatal("the backend killed a process that is not its runtime")
	}
}

func TestDeleteStopsAndRemovesEverything(t *testing.T) {
	e := newEnv(t)
	b := e.backend()
	hello, _ := testBARs(t)
	ctx := context.Background()
	if _, err := b.Apply(ctx, deployment(1, 2, hello)); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, b, 1, 2)
	ps := pids(b, testKey)
	if err := b.Delete(ctx, testKey); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if alivePID(p) {
			t.Fatalf("pid %d survived Delete", p)
		}
	}
	if _, err := os.Stat(filepath.Join(e.dir, testKey.InstanceID)); !os.IsNotExist(err) {
		t.Fatalf("runtime directory left after Delete: %v", err)
	}
	keys, err := b.List(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("List after Delete = %v, %v", keys, err)
	}
	if o := observe(t, b, testKey); !reflect.DeepEqual(o, orchestrator.Observed{}) {
		t.Fatalf("observed after Delete: %+v", o)
	}
	if err := b.Delete(ctx, testKey); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
}

func TestLogsTailAndFollow(t *testing.T) {
	e := newEnv(t)
	b := e.backend()
	hello, _ := testBARs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := b.Apply(ctx, deployment(1, 1, hello)); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, b, 1, 1)

	rc, err := b.Logs(ctx, testKey, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 || !strings.Contains(string(data), "runtime ready") {
		t.Fatalf("tail 3:\n%s", data)
	}

	follow, err := b.Logs(ctx, testKey, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	seen := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(follow)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "runtime ready") {
				close(seen)
				return
			}
		}
	}()
	// A second replica logs into a new file, which the follower picks up.
	if _, err := b.Apply(ctx, deployment(1, 2, hello)); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, b, 1, 2)
	select {
	case <-seen:
	case <-time.After(time.Minute):
		t.Fatal("following the logs did not show the new replica getting ready")
	}

	if _, err := b.Logs(ctx, orchestrator.Key{InstanceID: "inst-1", Name: "nope"}, 10, false); err == nil {
		t.Fatal("logs of a runtime that does not exist")
	}
}

func TestBadNamesAreRefused(t *testing.T) {
	e := newEnv(t)
	b := e.backend()
	hello, _ := testBARs(t)
	for _, k := range []orchestrator.Key{{InstanceID: "..", Name: "x"}, {InstanceID: "i", Name: "a/b"}, {InstanceID: "i", Name: ""}} {
		d := deployment(1, 1, hello)
		d.Key = k
		if _, err := b.Apply(context.Background(), d); err == nil {
			t.Errorf("Apply accepted key %q", k.String())
		}
	}
	d := deployment(1, 1, hello)
	d.BARs[0].Name = "../evil.bar"
	if _, err := b.Apply(context.Background(), d); err == nil {
		t.Error("Apply accepted a BAR name with a path")
	}
}

func TestBackoffDelay(t *testing.T) {
	for _, c := range []struct {
		failures int
		want     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second}, {7, time.Minute}, {50, time.Minute}} {
		if got := backoffDelay(c.failures); got != c.want {
			t.Errorf("backoffDelay(%d) = %s, want %s", c.failures, got, c.want)
		}
	}
}

// helperEnv carries what the control-plane helper process needs.
const (
	helperDir   = "SLUICE_LOCAL_TEST_CP_DIR"
	helperBin   = "SLUICE_LOCAL_TEST_CP_BIN"
	helperPorts = "SLUICE_LOCAL_TEST_CP_PORTS"
)

// TestControlPlaneHelper is not a test: the test below runs this test
// binary as a control plane (a process of its own, to be SIGKILLed).
func TestControlPlaneHelper(t *testing.T) {
	dir := os.Getenv(helperDir)
	if dir == "" {
		t.Skip("runs only as the control plane of TestRuntimesSurviveControlPlaneKill")
	}
	var ports PortRange
	fmt.Sscanf(os.Getenv(helperPorts), "%d-%d", &ports.First, &ports.Last)
	b, err := New(Options{Dir: dir, Binary: os.Getenv(helperBin), Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	hello, _ := testBARs(t)
	if _, err := b.Apply(context.Background(), deployment(1, 2, hello)); err != nil {
		t.Fatal(err)
	}
	o := waitSettled(t, b, 1, 2)
	fmt.Printf("READY %s\n", o.BaseURL)
	select {} // until killed
}

func TestRuntimesSurviveControlPlaneKill(t *testing.T) {
	e := newEnv(t)
	cp := exec.Command(os.Args[0], "-test.run=^TestControlPlaneHelper$")
	cp.Env = append(os.Environ(), helperDir+"="+e.dir, helperBin+"="+servertest.Binary(t),
		fmt.Sprintf("%s=%d-%d", helperPorts, e.ports.First, e.ports.Last))
	cp.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a group of its own, killed whole below
	out, err := cp.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cp.Stderr = os.Stderr
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cp.Process.Pid, syscall.SIGKILL); cp.Wait() })
	var baseURL string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
			baseURL = u
			break
		}
	}
	if baseURL == "" {
		t.Fatal("the control-plane helper ended without starting the runtime")
	}
	rtDir := filepath.Join(e.dir, testKey.InstanceID, testKey.Name)
	st, err := readState(rtDir)
	if err != nil {
		t.Fatal(err)
	}
	var ps []int
	for _, p := range st.Gens[0].Procs {
		ps = append(ps, p.PID)
	}

	// kill -9 of the control plane's whole process group.
	if err := syscall.Kill(-cp.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cp.Wait()
	for i := 0; i < 20; i++ {
		if c, body := get(t, baseURL+"/hello/orphan"); c != http.StatusOK {
			t.Fatalf("runtime stopped serving with its control plane: %d %s", c, body)
		}
	}

	// A new control plane adopts the processes, which are no longer its
	// children, and still notices when one dies.
	b := e.backend()
	o := observe(t, b, testKey)
	if o.AvailableReplicas != 2 || o.Generation != 1 || o.BaseURL != baseURL || o.Restarts != 0 {
		t.Fatalf("adopted runtime observed as %+v", o)
	}
	if _, err := b.Apply(context.Background(), deployment(1, 2, helloBAR)); err != nil {
		t.Fatal(err)
	}
	if err := b.runtimes[testKey].waitPasses(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if now := pids(b, testKey); fmt.Sprint(now) != fmt.Sprint(ps) {
		t.Fatalf("adoption restarted the runtime: pids %v → %v", ps, now)
	}
	syscall.Kill(ps[0], syscall.SIGKILL)
	waitFor(t, "the orphaned replica's death to be noticed", func() bool { return observe(t, b, testKey).Replicas == 1 })
	e.clock.Add(backoffMin)
	if o := waitSettled(t, b, 1, 2); o.Restarts != 1 {
		t.Fatalf("restarts %d, want 1", o.Restarts)
	}
}

func TestStartFailureShowsInLastError(t *testing.T) {
	e := newEnv(t)
	b := e.backend()
	hello, _ := testBARs(t)
	d := deployment(1, 1, hello)
	d.Configs[1].Data = []byte("shutdown:\n  timeuot: 20s\n") // misspelt: the runtime refuses it
	if _, err := b.Apply(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	var o orchestrator.Observed
	waitFor(t, "the failed start to be reported", func() bool {
		o = observe(t, b, testKey)
		return o.LastError != ""
	})
	// The runtime names file and line, not the key: keys are data too.
	if !strings.Contains(o.LastError, "serverconf/server.yaml: line 2: unknown field") || strings.Contains(o.LastError, "timeuot") || o.AvailableReplicas != 0 {
		t.Fatalf("observed %+v; want the runtime's own complaint about the setting", o)
	}
	if strings.Contains(o.LastError, canary) {
		t.Fatal("last error holds configuration data")
	}
	if !o.Restarting || o.CannotRun != "" {
		t.Fatalf("after one failed start: %+v; want it restarting, not yet given up on", o)
	}
	// It keeps trying, with backoff, counted as restarts; a generation that
	// exited before it was ready crashLoopLimit times in a row cannot run.
	for n := 1; n < crashLoopLimit; n++ {
		e.clock.Add(backoffMax)
		waitFor(t, "a restart that fails again", func() bool {
			o = observe(t, b, testKey)
			return o.Restarts >= n && o.Replicas == 0 && (o.Restarting || o.CannotRun != "")
		})
	}
	waitFor(t, "the runtime to be reported as one that cannot run", func() bool {
		o = observe(t, b, testKey)
		return o.CannotRun != ""
	})
	if o.Restarting || !strings.Contains(o.CannotRun, fmt.Sprintf("exits before it is ready, %d times in a row", crashLoopLimit)) ||
		!strings.Contains(o.CannotRun, "serverconf/server.yaml: line 2: unknown field") || strings.Contains(o.CannotRun, "timeuot") {
		t.Fatalf("after %d failed starts: %+v", crashLoopLimit, o)
	}

	// A corrected configuration rolls out and serves.
	if _, err := b.Apply(context.Background(), deployment(2, 1, hello)); err != nil {
		t.Fatal(err)
	}
	if o := waitSettled(t, b, 2, 1); o.LastError != "" || o.Restarts < 1 {
		t.Fatalf("after the fix: %+v; want the error gone and the restarts kept", o)
	}
}

func TestReplicaLogsAreCapped(t *testing.T) {
	e := newEnv(t)
	b, err := New(Options{Dir: e.dir, Binary: servertest.Binary(t), Ports: e.ports, MaxLogBytes: 200,
		Log: slog.New(slog.NewTextHandler(e.log, nil)), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hello, _ := testBARs(t)
	if _, err := b.Apply(context.Background(), deployment(1, 1, hello)); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, b, 1, 1)
	b.runtimes[testKey].capLogs()
	logPath := filepath.Join(e.dir, testKey.InstanceID, testKey.Name, "logs", "replica-0.log")
	cur, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.Stat(logPath + ".1")
	if err != nil || cur.Size() > 200 || old.Size() <= 200 || old.Mode().Perm() != 0o600 {
		t.Fatalf("after capping: current %d bytes, rotated %v %v", cur.Size(), old, err)
	}
	// The tail still reaches into the rotated file.
	rc, err := b.Logs(context.Background(), testKey, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	if n := strings.Count(string(data), "\n"); n != 2 {
		t.Fatalf("tail 2 after rotation gave %d lines:\n%s", n, data)
	}
}

// A replica started by a control plane that died before recording it is
// found by its command line and stopped by the next control plane; the
// recorded ones are left alone.
func TestAdoptionStopsUnrecordedReplicas(t *testing.T) {
	e := newEnv(t)
	b1 := e.backend()
	hello, _ := testBARs(t)
	ctx := context.Background()
	if _, err := b1.Apply(ctx, deployment(1, 1, hello)); err != nil {
		t.Fatal(err)
	}
	o := waitSettled(t, b1, 1, 1)
	b1.Close()
	recorded := pids(b1, testKey)

	rtDir := filepath.Join(e.dir, testKey.InstanceID, testKey.Name)
	gens, _ := filepath.Glob(filepath.Join(rtDir, "gen-*"))
	if len(gens) != 1 {
		t.Fatalf("generation directories %v", gens)
	}
	stray := exec.Command(servertest.Binary(t), "runtime", "--bar", filepath.Join(gens[0], "bars", "hello.bar"),
		"--config-dir", filepath.Join(gens[0], "config"), "--listen", strings.TrimPrefix(o.BaseURL, "http://"),
		"--admin-listen", "127.0.0.1:0")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- stray.Wait() }()
	t.Cleanup(func() { stray.Process.Kill() })
	waitFor(t, "the stray replica to run", func() bool {
		return contains(runtimesUnder(rtDir), stray.Process.Pid)
	})

	b2 := e.backend()
	if o := observe(t, b2, testKey); o.AvailableReplicas != 1 {
		t.Fatalf("adopted runtime observed as %+v", o)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("the unrecorded replica was not stopped")
	}
	if fmt.Sprint(pids(b2, testKey)) != fmt.Sprint(recorded) || !alivePID(recorded[0]) {
		t.Fatalf("recorded replica %v disturbed: now %v", recorded, pids(b2, testKey))
	}
}

func TestRuntimeProcessesFindsWhatRunsUnderADirectory(t *testing.T) {
	e := newEnv(t)
	b := e.backend()
	hello, _ := testBARs(t)
	if _, err := b.Apply(context.Background(), deployment(1, 2, hello)); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, b, 1, 2)
	got := RuntimeProcesses(filepath.Dir(e.dir))
	want := pids(b, testKey)
	if len(got) != 2 || !contains(got, want[0]) || !contains(got, want[1]) {
		t.Fatalf("RuntimeProcesses = %v, want %v", got, want)
	}
	if other := RuntimeProcesses(t.TempDir()); len(other) != 0 {
		t.Fatalf("processes found under an empty directory: %v", other)
	}
}

// A stopped runtime's port taken meanwhile by another process (with
// SO_REUSEPORT, which would share it) is not joined: the start fails and
// says why, and succeeds once the port is free again.
func TestPortTakenByAnotherProcessIsNotShared(t *testing.T) {
	e := newEnv(t)
	b := e.backend()
	hello, _ := testBARs(t)
	ctx := context.Background()
	o, err := b.Apply(ctx, deployment(1, 1, hello))
	if err != nil {
		t.Fatal(err)
	}
	waitSettled(t, b, 1, 1)
	if _, err := b.Apply(ctx, deployment(1, 0, hello)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the runtime to stop", func() bool {
		o := observe(t, b, testKey)
		return o.Replicas == 0 && !o.Progressing
	})

	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return serr
	}}
	squatter, err := lc.Listen(ctx, "tcp", strings.TrimPrefix(o.BaseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	if _, err := b.Apply(ctx, deployment(1, 1, hello)); err != nil {
		t.Fatal(err)
	}
	var got orchestrator.Observed
	waitFor(t, "the refused start to be reported", func() bool {
		got = observe(t, b, testKey)
		return strings.Contains(got.LastError, "taken by another process")
	})
	if got.Replicas != 0 {
		t.Fatalf("a replica started on a port shared with a stranger: %+v", got)
	}
	if got.Restarting || !strings.Contains(got.CannotRun, "cannot be started") {
		t.Fatalf("a replica that cannot be started: %+v; want it reported as one that cannot run", got)
	}
	squatter.Close()
	e.clock.Add(backoffMin)
	waitSettled(t, b, 1, 1)
}

// A replica that stops answering (here: SIGSTOP) is killed and restarted.
func TestHungReplicaIsRestarted(t *testing.T) {
	e := newEnv(t)
	b, err := New(Options{Dir: e.dir, Binary: servertest.Binary(t), Ports: e.ports, HungAfter: time.Second,
		Log: slog.New(slog.NewTextHandler(e.log, nil)), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hello, _ := testBARs(t)
	if _, err := b.Apply(context.Background(), deployment(1, 1, hello)); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, b, 1, 1)
	hung := pids(b, testKey)[0]
	if err := syscall.Kill(hung, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var o orchestrator.Observed
	waitFor(t, "the hung replica to be replaced", func() bool {
		e.clock.Add(backoffMin) // let the restart's backoff run out, whenever it begins
		o = observe(t, b, testKey)
		return o.Restarts == 1 && o.AvailableReplicas == 1 && !contains(pids(b, testKey), hung)
	})
	if !strings.Contains(o.LastError, "stopped answering") {
		t.Fatalf("last error %q", o.LastError)
	}
	if alivePID(hung) {
		t.Fatalf("hung replica %d still exists", hung)
	}
}

// OnChange tells the reconciler when a replica became ready, so the
// status need not wait for the next pass: the first call that finds the
// runtime available comes from the supervisor, not from anyone asking.
func TestOnChangeTellsReadiness(t *testing.T) {
	e := newEnv(t)
	changed := make(chan orchestrator.Key, 16)
	b, err := New(Options{
		Dir: e.dir, Binary: servertest.Binary(t), Ports: e.ports, StopTimeout: 20 * time.Second,
		Log: slog.New(slog.NewTextHandler(e.log, nil)), Now: e.clock.Now,
		OnChange: func(k orchestrator.Key) {
			select {
			case changed <- k:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	hello, _ := testBARs(t)
	if _, err := b.Apply(context.Background(), deployment(1, 1, hello)); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(90 * time.Second)
	for {
		select {
		case k := <-changed:
			if k != testKey {
				t.Fatalf("told about %s; want %s", k, testKey)
			}
			if o := observe(t, b, testKey); o.AvailableReplicas == 1 {
				return
			}
		case <-timeout:
			t.Fatalf("never told that the replica is ready; log:\n%s", e.log.String())
		}
	}
}
