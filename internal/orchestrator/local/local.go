// Package local is the default orchestrator backend: it runs each
// integration runtime as `sluice runtime` child processes on this machine.
//
// It owns, under its directory, one directory per runtime holding the
// materialised generations (BAR files and decrypted configurations, files
// 0600, directories 0700), the replicas' log files and a small state file
// (ports, pids, restarts). Replicas of a runtime share one stable port with
// SO_REUSEPORT; each replica has an admin port of its own, probed for
// readiness, and says when it is ready through a pipe (--ready-fd) that
// wakes its supervisor at once; the probes on the supervisor's ticks stay
// the guarantee (an adopted replica has no pipe). Processes are started in a session of their own, so that the
// control plane can die (even by SIGKILL) without taking them along, and a
// new Backend adopts them from the state files instead of restarting them.
// A crashed replica is restarted with exponential backoff; a new
// generation is started and made ready before the previous one is told to
// drain.
//
// Operating notes: it enables net.ipv4.tcp_migrate_req (needs root, or
// set it once with sysctl) so that connections queued on a draining
// replica move to the new generation; under systemd the control plane's
// unit needs KillMode=process, or stopping the unit kills the runtimes
// with it. It is built and tested for Linux (process identity through
// /proc); other Unix systems go through ps(1); elsewhere New refuses.
//
// It never logs configuration data and never puts it into an error: the
// only text it reports from a runtime is that runtime's own (redacting)
// log. It does not fetch BARs or decrypt configurations (the reconciler
// does) and keeps no state outside its directory.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/orchestrator"
)

var _ orchestrator.Backend = (*Backend)(nil)

// PortRange is the inclusive range runtime ports are taken from.
type PortRange struct {
	First, Last int
}

// Options configure a local backend.
type Options struct {
	// Dir holds every runtime's files, e.g. <data-dir>/runtimes. It is
	// created with mode 0700.
	Dir string
	// Binary is the sluice executable to run as `Binary runtime …`;
	// empty: this process's own executable. Either way runtimes run from
	// a copy in Dir/bin (see installBinary), so deleting or replacing it
	// (as `go run` and upgrades do) never stops a restart.
	Binary string
	// Host is the address runtimes listen on (flows and admin);
	// empty: 127.0.0.1.
	Host string
	// AdvertiseHost is the host put into BaseURL and the runtimes'
	// --public-url; empty: Host (127.0.0.1 when Host is unspecified).
	AdvertiseHost string
	// Ports is where each runtime's flow port comes from; zero: 7801-8800.
	Ports PortRange
	// MaxLogBytes caps each replica's log file: beyond it the file is
	// rotated to a single .1 file. Zero: 8 MiB.
	MaxLogBytes int64
	// StopTimeout is how long a SIGTERMed replica may drain before it is
	// killed; zero: 40s (the runtime's own drain limit defaults to 30s).
	StopTimeout time.Duration
	// HungAfter is how long a replica that was ready may fail its
	// readiness checks before it is killed and restarted; zero: 30s,
	// negative: never.
	HungAfter time.Duration
	// Env is added to the minimal environment runtimes get.
	Env []string
	// Log receives the backend's own log; nil: slog.Default().
	Log *slog.Logger
	// OnChange, when set, is called (from the supervisor's goroutine,
	// without locks held) after a pass changed what Observe reports of a
	// runtime: a replica became ready or stopped being, crashed, or a
	// rollout moved on. The reconciler uses it to write the status at once
	// instead of at its next pass; it must not block.
	OnChange func(orchestrator.Key)
	// Now is the clock for backoff decisions (tests advance it instead of
	// sleeping); nil: time.Now.
	Now clock.Func
}

// Backoff of crashed replicas: the delay doubles from backoffMin to
// backoffMax, and a replica that stayed up for backoffReset starts over.
const (
	backoffMin   = time.Second
	backoffMax   = 60 * time.Second
	backoffReset = 2 * time.Minute
)

// backoffDelay is the wait before restarting a replica that crashed
// failures times in a row (failures ≥ 1).
func backoffDelay(failures int) time.Duration {
	d := backoffMin
	for i := 1; i < failures && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// Backend runs integration runtimes as local processes. Create it with New.
type Backend struct {
	opts     Options
	log      *slog.Logger
	now      clock.Func
	binary   string
	baseHost string // host part of BaseURL
	dialHost string // where the control plane reaches admin listeners

	mu       sync.Mutex
	runtimes map[orchestrator.Key]*runtimeState
	closed   bool
	wg       sync.WaitGroup
	stop     chan struct{} // closed by Close: supervisors end, processes stay
}

// New returns a backend over opts.Dir. It starts nothing: runtimes already
// running from an earlier control plane are adopted when they are first
// named (Apply, Observe, Logs, Delete) or listed.
func New(opts Options) (*Backend, error) {
	if !supported {
		return nil, errors.New("local: runtimes as local processes need a Unix system")
	}
	if opts.Dir == "" {
		return nil, errors.New("local: no directory")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Ports == (PortRange{}) {
		opts.Ports = PortRange{First: 7801, Last: 8800}
	}
	if opts.Ports.First <= 0 || opts.Ports.Last < opts.Ports.First || opts.Ports.Last > 65535 {
		return nil, fmt.Errorf("local: bad port range %d-%d", opts.Ports.First, opts.Ports.Last)
	}
	if opts.MaxLogBytes <= 0 {
		opts.MaxLogBytes = 8 << 20
	}
	if opts.HungAfter == 0 {
		opts.HungAfter = 30 * time.Second
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 40 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = clock.Wall
	}
	bin := opts.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local: finding the sluice binary: %w", err)
		}
		bin = exe
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	opts.Dir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local: creating %s: %w", dir, err)
	}
	if bin, err = installBinary(filepath.Join(dir, binDir), bin); err != nil {
		return nil, err
	}
	dial := opts.Host
	if ip := net.ParseIP(dial); ip != nil && ip.IsUnspecified() {
		dial = "127.0.0.1"
	}
	host := opts.AdvertiseHost
	if host == "" {
		host = dial
	}
	b := &Backend{
		opts:     opts,
		log:      opts.Log.With("component", "orchestrator.local"),
		now:      opts.Now,
		binary:   bin,
		baseHost: host,
		dialHost: dial,
		runtimes: map[orchestrator.Key]*runtimeState{},
		stop:     make(chan struct{}),
	}
	enableMigrateReq(b.log)
	return b, nil
}

// Close stops supervising. The runtimes keep serving: a new Backend over
// the same directory adopts them.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.stop)
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

var errClosed = errors.New("local: backend closed")

// namePart is what an instance id or a runtime name must look like to be a
// directory name: no separators, no dot-dot, nothing hidden.
var namePart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func (b *Backend) runtimeDir(k orchestrator.Key) (string, error) {
	if !namePart.MatchString(k.InstanceID) || !namePart.MatchString(k.Name) {
		return "", fmt.Errorf("local: runtime %q: instance id and name must match %s", k.String(), namePart)
	}
	return filepath.Join(b.opts.Dir, k.InstanceID, k.Name), nil
}

// get returns the runtime k, adopting it from its state file when this
// backend has not seen it yet. With create, a runtime without a state
// file is set up (its port reserved); without, it answers nil.
func (b *Backend) get(ctx context.Context, k orchestrator.Key, create bool) (*runtimeState, error) {
	dir, err := b.runtimeDir(k)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errClosed
	}
	r := b.runtimes[k]
	if r == nil {
		st, err := readState(dir)
		switch {
		case err == nil:
			if st.InstanceID != k.InstanceID || st.Name != k.Name {
				b.mu.Unlock()
				return nil, fmt.Errorf("local: state file of %s names %s/%s", k, st.InstanceID, st.Name)
			}
			tok, terr := adminCredential(dir)
			if terr != nil {
				b.mu.Unlock()
				return nil, terr
			}
			r = b.newRuntime(k, dir, st, tok)
			r.adopted = true
			b.log.Info("runtime adopted", "runtime", k.String(), "port", st.Port, "processes", st.processCount())
		case errors.Is(err, fs.ErrNotExist) && create:
			port, perr := b.allocatePort()
			if perr != nil {
				b.mu.Unlock()
				return nil, perr
			}
			st = &state{Version: stateVersion, InstanceID: k.InstanceID, Name: k.Name, Port: port}
			if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
				b.mu.Unlock()
				return nil, fmt.Errorf("local: creating %s: %w", dir, err)
			}
			if err := writeState(dir, st); err != nil {
				b.mu.Unlock()
				return nil, err
			}
			tok, terr := adminCredential(dir)
			if terr != nil {
				b.mu.Unlock()
				return nil, terr
			}
			r = b.newRuntime(k, dir, st, tok)
			b.log.Info("runtime created", "runtime", k.String(), "port", port)
		case errors.Is(err, fs.ErrNotExist):
			b.mu.Unlock()
			return nil, nil
		default:
			b.mu.Unlock()
			return nil, err
		}
		b.runtimes[k] = r
		b.wg.Add(1)
		go r.supervise()
	}
	b.mu.Unlock()
	// The first pass learns which adopted processes are alive and ready,
	// so that the first Observe after a restart does not report an
	// outage that is not there.
	select {
	case <-r.firstPass:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return r, nil
}

// List names every runtime that has a directory: running, stopped
// (replicas 0) or adopted.
func (b *Backend) List(ctx context.Context) ([]orchestrator.Key, error) {
	states, err := filepath.Glob(filepath.Join(b.opts.Dir, "*", "*", stateFile))
	if err != nil {
		return nil, fmt.Errorf("local: listing runtimes: %w", err)
	}
	var keys []orchestrator.Key
	for _, p := range states {
		rel, err := filepath.Rel(b.opts.Dir, filepath.Dir(p))
		if err != nil {
			continue
		}
		k := orchestrator.Key{InstanceID: filepath.Dir(rel), Name: filepath.Base(rel)}
		if _, err := b.runtimeDir(k); err != nil {
			continue // not a directory this backend made
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys, nil
}

// Apply makes the runtime match d: it materialises a new generation when
// the content changed and lets the supervisor start, roll over, scale or
// stop processes. It returns at once with what it observes.
func (b *Backend) Apply(ctx context.Context, d orchestrator.Deployment) (orchestrator.Observed, error) {
	if d.Replicas < 0 {
		return orchestrator.Observed{}, fmt.Errorf("local: runtime %s: negative replicas %d", d.Key, d.Replicas)
	}
	r, err := b.get(ctx, d.Key, true)
	if err != nil {
		return orchestrator.Observed{}, err
	}
	if err := r.apply(d); err != nil {
		return orchestrator.Observed{}, err
	}
	r.kick()
	return r.observe(), nil
}

// Observe reports on a runtime; a runtime this backend does not have is
// reported as nothing running.
func (b *Backend) Observe(ctx context.Context, k orchestrator.Key) (orchestrator.Observed, error) {
	r, err := b.get(ctx, k, false)
	if err != nil || r == nil {
		return orchestrator.Observed{}, err
	}
	return r.observe(), nil
}

// Delete stops every process of the runtime (SIGTERM, then SIGKILL after
// the stop timeout or when ctx ends) and removes its directory, secrets
// included. Deleting a runtime that does not exist is not an error.
func (b *Backend) Delete(ctx context.Context, k orchestrator.Key) error {
	r, err := b.get(ctx, k, false)
	if err != nil {
		return err
	}
	if r == nil {
		// A directory without a state file (a create interrupted before
		// its first write) still goes.
		dir, _ := b.runtimeDir(k)
		return removeRuntimeDir(b.opts.Dir, dir)
	}
	r.halt()
	r.stopAll(ctx)
	// Anything still running from the directory (a replica the state
	// file never recorded) must not outlive its secrets.
	for _, pid := range runtimesUnder(r.dir) {
		b.log.Warn("killing a replica the state file does not know", "runtime", k.String(), "pid", pid)
		sendSignal(pid, syscall.SIGKILL)
	}
	// The directory goes before the runtime leaves the map, both under
	// b.mu: a get in between would adopt it again from its state file.
	b.mu.Lock()
	err = removeRuntimeDir(b.opts.Dir, r.dir)
	if err == nil {
		delete(b.runtimes, k)
	}
	b.mu.Unlock()
	if err != nil {
		return err
	}
	b.log.Info("runtime deleted", "runtime", k.String())
	return nil
}

// removeRuntimeDir removes a runtime's directory and its instance's
// directory when that became empty.
func removeRuntimeDir(root, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("local: removing %s: %w", dir, err)
	}
	_ = os.Remove(filepath.Dir(dir)) // fails, rightly, while other runtimes live there
	_ = root
	return nil
}

// allocatePort picks the first port of the range that no runtime's state
// file holds and that can be bound now. Called with b.mu held, so two
// runtimes created at once cannot pick the same port.
func (b *Backend) allocatePort() (int, error) {
	taken := map[int]bool{}
	for _, r := range b.runtimes {
		taken[r.port()] = true
	}
	files, _ := filepath.Glob(filepath.Join(b.opts.Dir, "*", "*", stateFile))
	for _, f := range files {
		if st, err := readState(filepath.Dir(f)); err == nil {
			taken[st.Port] = true
		}
	}
	// The scan starts at a random place in the range: control planes of
	// other data directories on this host (several test servers, a laptop
	// with two) scan the same range, and two that scan it from its start
	// at the same moment both find the same port free and, through
	// SO_REUSEPORT, would split its traffic between unrelated runtimes.
	n := b.opts.Ports.Last - b.opts.Ports.First + 1
	start := rand.IntN(n)
	for i := 0; i < n; i++ {
		p := b.opts.Ports.First + (start+i)%n
		if taken[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(b.opts.Host, strconv.Itoa(p)))
		if err != nil {
			continue // someone else's
		}
		ln.Close()
		return p, nil
	}
	return 0, fmt.Errorf("local: no free port in %d-%d", b.opts.Ports.First, b.opts.Ports.Last)
}

// freePort asks the kernel for a free port for a replica's admin listener.
// Another process could take it before the replica binds it; the replica
// then fails to start and is restarted with a new one.
func (b *Backend) freePort() (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(b.opts.Host, "0"))
	if err != nil {
		return 0, fmt.Errorf("local: finding an admin port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
