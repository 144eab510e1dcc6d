package local

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sluice-dev/sluice/internal/procmem"
)

// procInfo is what /proc says about a pid.
type procInfo struct {
	state     byte   // R, S, D, Z, …
	startTime uint64 // clock ticks after boot
	cmdline   []string
}

// isRuntimeOf says whether a process is a live `sluice runtime` serving
// the generation directory genDir and, when startTime is known, the very
// process that was started then: a pid reused by anything else (another
// program, or a runtime of another generation) does not match.
func isRuntimeOf(info procInfo, genDir string, startTime uint64) bool {
	if info.state == 'Z' || info.state == 'X' {
		return false
	}
	if startTime != 0 && info.startTime != startTime {
		return false
	}
	if len(info.cmdline) < 2 || info.cmdline[1] != "runtime" {
		return false
	}
	prefix := genDir + string(filepath.Separator)
	for _, a := range info.cmdline {
		if strings.HasPrefix(a, prefix) {
			return true
		}
	}
	return false
}

// RuntimeProcesses lists the pids of the `sluice runtime` processes that
// run from under dir (a backend's Dir, or a data directory holding it).
// Runtimes outlive their control plane by design, so tests and tools that
// throw a data directory away use it to stop what still runs from there.
func RuntimeProcesses(dir string) []int {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	return runtimesUnder(abs)
}

// envKeep are the variables of the control plane's environment a runtime
// inherits. Everything else (the store's DSN, the master key, cloud
// credentials) stays with the control plane.
var envKeep = map[string]bool{
	"PATH": true, "HOME": true, "TZ": true, "LANG": true, "TMPDIR": true,
	"GOMAXPROCS": true, "GOGC": true, "GOMEMLIMIT": true, "GODEBUG": true, "GORACE": true, "GOTRACEBACK": true,
	"SSL_CERT_FILE": true, "SSL_CERT_DIR": true, procmem.Env: true,
	"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true,
	"http_proxy": true, "https_proxy": true, "no_proxy": true,
}

func runtimeEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if envKeep[k] || strings.HasPrefix(k, "LC_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// started is a process this backend started; its exit is seen through
// Wait, which also reaps it.
type started struct {
	exited chan struct{}
	err    error // exit status, once exited is closed
}

// startProcess starts one replica of generation g. Its stdout and stderr
// go straight to its log file (no pipe: a pipe would break, and the
// runtime with it, when the control plane dies), and it gets a session of
// its own so that signals to the control plane's process group do not
// reach it.
func (r *runtimeState) startProcess(g *gen, slot int) (*proc, *started, error) {
	b := r.b
	admin, err := b.freePort()
	if err != nil {
		return nil, nil, err
	}
	genDir := filepath.Join(r.dir, g.Dir)
	logPath := r.logPath(slot)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("local: opening log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	var offset int64
	if fi, err := logf.Stat(); err == nil {
		offset = fi.Size()
	}
	args := []string{"runtime"}
	if g.Bundle != "" {
		args = append(args, "--bundle-url", g.Bundle, "--bundle-token-file", filepath.Join(genDir, bundleTokenFile),
			"--bundle-dir", filepath.Join(genDir, fmt.Sprintf("bundle-%d", slot)))
		if g.BundleCA {
			args = append(args, "--bundle-ca-file", filepath.Join(genDir, bundleCAFile))
		}
	} else {
		for _, name := range g.BARs {
			args = append(args, "--bar", filepath.Join(genDir, "bars", name))
		}
		args = append(args, "--config-dir", filepath.Join(genDir, "config"))
	}
	args = append(args,
		"--listen", hostPort(b.opts.Host, r.port()),
		"--admin-listen", hostPort(b.opts.Host, admin),
		"--admin-token-file", filepath.Join(r.dir, adminTokenFile),
		"--public-url", r.baseURL(g),
	)
	// The replica says when it serves through a pipe (--ready-fd) it
	// writes one line to and closes: the supervisor probes at once instead
	// of at its next tick. The pipe is closed after that line, so the
	// replica does not depend on the control plane living on; a replica
	// adopted later has none and is probed on the ticks.
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("local: starting runtime: %w", err)
	}
	args = append(args, "--ready-fd", "3")
	cmd := exec.Command(b.binary, args...)
	cmd.Dir = genDir
	cmd.Env = runtimeEnv(b.opts.Env)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{readyW} // fd 3
	cmd.SysProcAttr = detached()
	err = cmd.Start()
	readyW.Close() // the child has its own
	if err != nil {
		readyR.Close()
		return nil, nil, fmt.Errorf("local: starting runtime: %w", err)
	}
	go r.awaitReady(readyR)
	s := &started{exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
		r.kick() // the next pass reaps it now, not at its next tick
	}()
	p := &proc{Slot: slot, PID: cmd.Process.Pid, AdminPort: admin, StartedAt: b.now(), LogOffset: offset}
	if info, err := readProc(p.PID); err == nil {
		p.StartTime = info.startTime
	}
	b.log.Info("replica started", "runtime", r.key.String(), "generation", g.Generation, "slot", slot,
		"pid", p.PID, "port", r.port(), "adminPort", admin)
	return p, s, nil
}

// awaitReady wakes the supervisor when the replica writes its ready line,
// and again when the pipe ends (the line was written, or the replica
// exited before it was ready): either way the next pass has news.
func (r *runtimeState) awaitReady(pipe *os.File) {
	defer pipe.Close()
	buf := make([]byte, 16)
	for {
		n, err := pipe.Read(buf)
		if n > 0 || err != nil {
			r.kick()
		}
		if err != nil {
			return
		}
	}
}

// signal sends sig to p after making sure p is still the process that was
// started, so that a pid reused by something else is never signalled.
func (r *runtimeState) signal(g *gen, p *proc, sig syscall.Signal) {
	if s := r.children[p.PID]; s != nil {
		select {
		case <-s.exited:
			return
		default:
		}
	} else if info, err := readProc(p.PID); err != nil || !isRuntimeOf(info, filepath.Join(r.dir, g.Dir), p.StartTime) {
		return
	}
	if err := sendSignal(p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		r.b.log.Warn("signalling replica failed", "runtime", r.key.String(), "pid", p.PID, "signal", sig.String(), "err", err)
	}
}

// alive says whether p is still running, and if it exited as our child,
// with what status.
func (r *runtimeState) alive(g *gen, p *proc) (bool, error) {
	if s := r.children[p.PID]; s != nil {
		select {
		case <-s.exited:
			return false, s.err
		default:
			return true, nil
		}
	}
	info, err := readProc(p.PID)
	if err != nil {
		return false, nil
	}
	return isRuntimeOf(info, filepath.Join(r.dir, g.Dir), p.StartTime), nil
}

// enableMigrateReq turns on net.ipv4.tcp_migrate_req, so that connections
// waiting in the accept queue of a draining replica's SO_REUSEPORT
// listener move to another listener of the port instead of being reset
// when it closes. Without it a rolling redeploy can fail a few requests.
func enableMigrateReq(log *slog.Logger) {
	const p = "/proc/sys/net/ipv4/tcp_migrate_req"
	cur, err := os.ReadFile(p)
	if err == nil && strings.TrimSpace(string(cur)) == "1" {
		return
	}
	if err == nil {
		err = os.WriteFile(p, []byte("1\n"), 0o644)
	}
	if err != nil {
		log.Warn("cannot enable net.ipv4.tcp_migrate_req; a rolling redeploy may reset connections queued on a draining replica",
			"err", err)
		return
	}
	log.Info("enabled net.ipv4.tcp_migrate_req for connection handover between generations")
}
