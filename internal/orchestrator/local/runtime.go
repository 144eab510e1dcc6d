package local

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/internal/configuration"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
)

// Supervision intervals: fast while something is changing (a rollout, a
// start, a backoff, a drain), slow once the runtime is steady.
const (
	fastTick = 50 * time.Millisecond
	waitTick = 250 * time.Millisecond
	slowTick = time.Second
	// unreadyAfter failed probes in a row take a ready replica out of the
	// available count; one slow answer on a busy machine does not.
	unreadyAfter = 3
	probeTimeout = time.Second
	// probeIdle is how long a probe connection is kept unused: longer than
	// slowTick, so a steady replica is probed on one connection.
	probeIdle = 5 * slowTick
)

// runtimeState is one runtime: its persisted state, its processes and the
// goroutine that supervises them.
type runtimeState struct {
	b   *Backend
	key orchestrator.Key
	dir string

	mu       sync.Mutex
	st       *state
	children map[int]*started  // processes this backend started (and reaps), by pid
	ready    map[int]bool      // by pid, from the latest probes
	failed   map[int]int       // failed probes in a row, by pid
	launched map[int]time.Time // wall-clock start of the processes started here, for the startup time
	lastOK   map[int]time.Time // wall-clock time of the last successful probe, by pid
	hung     map[int]bool      // killed for not answering, by pid
	passes   int
	passDone *sync.Cond

	wake      chan struct{}
	halted    chan struct{} // closed by halt: the supervisor ends
	haltOnce  sync.Once
	ended     chan struct{} // closed when the supervisor has ended
	firstPass chan struct{}
	adopted   bool // found on disk: processes of an earlier control plane may run
	probe     *http.Client
	// adminToken is the credential the replicas' admin listeners demand
	// (all but /healthz and /readyz); it lives in adminTokenFile.
	adminToken secret.Value
}

// adminTokenFile holds a runtime's admin credential (mode 0600, in the
// runtime's directory, so it outlives generations and control-plane
// restarts and goes with the runtime).
const adminTokenFile = "admin.token"

// adminCredential reads the runtime's admin credential, making one (32
// random bytes) the first time. A runtime adopted from a control plane
// that predates the credential gets one too; its old replicas ignore it
// and the next generation demands it.
func adminCredential(dir string) (secret.Value, error) {
	path := filepath.Join(dir, adminTokenFile)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return secret.New(strings.TrimSpace(string(b))), nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return secret.Value{}, fmt.Errorf("local: reading the admin credential: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return secret.Value{}, err
	}
	tok := "slra_" + base64.RawURLEncoding.EncodeToString(raw)
	tmp, err := os.CreateTemp(dir, ".admin-*")
	if err != nil {
		return secret.Value{}, fmt.Errorf("local: writing the admin credential: %w", err)
	}
	_, werr := tmp.WriteString(tok + "\n")
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return secret.Value{}, fmt.Errorf("local: writing the admin credential: %w", werr)
	}
	return secret.New(tok), nil
}

func (b *Backend) newRuntime(k orchestrator.Key, dir string, st *state, adminToken secret.Value) *runtimeState {
	r := &runtimeState{
		b: b, key: k, dir: dir, st: st, adminToken: adminToken,
		children:  map[int]*started{},
		ready:     map[int]bool{},
		failed:    map[int]int{},
		launched:  map[int]time.Time{},
		lastOK:    map[int]time.Time{},
		hung:      map[int]bool{},
		wake:      make(chan struct{}, 1),
		halted:    make(chan struct{}),
		ended:     make(chan struct{}),
		firstPass: make(chan struct{}),
		probe:     newProbeClient(),
	}
	r.passDone = sync.NewCond(&r.mu)
	return r
}

// newProbeClient is the client of a runtime's readiness probes. It keeps
// one connection per replica open between probes: a steady runtime is
// probed every slowTick for as long as it runs, and a fresh connection
// per probe cost a dial and two new goroutines of the transport each time,
// whose stacks grow from scratch (the runtime walks the pc tables of every
// frame to copy them). That was most of what an idle control plane mapped
// of its executable again after giving it back (bench/README.md, deploy
// and memory). A connection left by a replica that is gone fails its next
// reuse, which the transport retries on a new one (a GET is idempotent),
// and is dropped after probeIdle unused.
func newProbeClient() *http.Client {
	return &http.Client{Timeout: probeTimeout, Transport: &http.Transport{
		Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: probeIdle,
		// The probe's answer is a few bytes: small buffers, not 4 KiB each way.
		ReadBufferSize: 512, WriteBufferSize: 512,
	}}
}

func (r *runtimeState) port() int {
	return r.st.Port // Port never changes after creation
}

func (r *runtimeState) baseURL(g *gen) string {
	scheme := "http://"
	if g != nil && g.TLS {
		scheme = "https://"
	}
	return scheme + hostPort(r.b.baseHost, r.port())
}

// servesTLS says whether a deployment's replicas serve HTTPS: a keystore
// configuration makes them (docs/runtime.md).
func servesTLS(d orchestrator.Deployment) bool {
	for _, c := range d.Configs {
		if c.Type == "keystore" {
			return true
		}
	}
	return false
}

func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func (r *runtimeState) logPath(slot int) string {
	return filepath.Join(r.dir, "logs", fmt.Sprintf("replica-%d.log", slot))
}

func (r *runtimeState) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// halt ends the supervisor and waits for it.
func (r *runtimeState) halt() {
	r.haltOnce.Do(func() { close(r.halted) })
	<-r.ended
}

// contentHash identifies what a generation is made of, so that Apply
// with the same generation and content is a no-op and a change of content
// alone still rolls over.
func contentHash(d orchestrator.Deployment) string {
	h := sha256.New()
	for _, b := range d.BARs {
		// The reconciler hashed each BAR once when it read it.
		sum := b.SHA256
		if sum == "" {
			s := sha256.Sum256(b.Data)
			sum = hex.EncodeToString(s[:])
		}
		fmt.Fprintf(h, "bar\x00%s\x00%s\n", b.Name, sum)
	}
	cs := slices.Clone(d.Configs)
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Type != cs[j].Type {
			return cs[i].Type < cs[j].Type
		}
		return cs[i].Name < cs[j].Name
	})
	for _, c := range cs {
		sum := sha256.Sum256(c.Data)
		fmt.Fprintf(h, "config\x00%s\x00%s\x00%x\n", c.Type, c.Name, sum)
	}
	// A new control-plane certificate is a new generation: its replicas
	// must trust the certificate that now serves.
	if len(d.BundleCA) > 0 {
		fmt.Fprintf(h, "bundle-ca\x00%x\n", sha256.Sum256(d.BundleCA))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// apply records the desired state of d, materialising a new generation
// when needed. Processes are the supervisor's business.
func (r *runtimeState) apply(d orchestrator.Deployment) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	changed := false
	if st.UID != d.UID {
		st.UID, changed = d.UID, true
	}
	if st.Replicas != d.Replicas {
		r.b.log.Info("runtime scaled", "runtime", r.key.String(), "from", st.Replicas, "to", d.Replicas)
		st.Replicas, changed = d.Replicas, true
	}
	// The last error belongs to what ran before a stop or a new
	// generation; kept, it would make a healthy start look failed.
	if d.Replicas == 0 {
		if st.Target != "" {
			st.Target, st.LastError, changed = "", "", true
		}
	} else {
		hash := contentHash(d)
		t := st.gen(st.Target)
		if t == nil || t.Generation != d.Generation || t.Hash != hash {
			g, err := r.materialise(d, hash)
			if err != nil {
				return err
			}
			st.Gens = append(st.Gens, g)
			st.Target = g.Dir
			st.LastError = ""
			t = g
			changed = true
			r.b.log.Info("generation materialised", "runtime", r.key.String(), "generation", d.Generation,
				"dir", g.Dir, "bars", len(d.BARs), "configurations", len(d.Configs))
		}
		if t.Replicas != d.Replicas {
			t.Replicas, changed = d.Replicas, true
		}
	}
	if changed {
		return writeState(r.dir, st)
	}
	return nil
}

// bundleTokenFile holds a generation's bundle token, mode 0600.
const bundleTokenFile = "bundle.token"

// bundleCAFile holds, in a generation's directory, the control plane's
// TLS certificate its replicas trust (https bundle URLs only).
const bundleCAFile = "bundle-ca.pem"

// materialise writes a generation's BARs and configurations into a
// directory of its own. It writes into a temporary directory first and
// renames it, so a generation directory is always complete.
func (r *runtimeState) materialise(d orchestrator.Deployment, hash string) (*gen, error) {
	if len(d.BARs) == 0 {
		return nil, fmt.Errorf("local: runtime %s: generation %d has no BAR files", r.key, d.Generation)
	}
	name := fmt.Sprintf("gen-%d-%s", d.Generation, hash[:8])
	for n := 2; r.st.gen(name) != nil; n++ {
		name = fmt.Sprintf("gen-%d-%s-%d", d.Generation, hash[:8], n)
	}
	tmp, err := os.MkdirTemp(r.dir, ".tmp-"+name+"-")
	if err != nil {
		return nil, fmt.Errorf("local: materialising %s: %w", r.key, err)
	}
	fail := func(err error) (*gen, error) {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(tmp, "bars"), 0o700); err != nil {
		return fail(fmt.Errorf("local: materialising %s: %w", r.key, err))
	}
	if err := os.Mkdir(filepath.Join(tmp, "config"), 0o700); err != nil {
		return fail(fmt.Errorf("local: materialising %s: %w", r.key, err))
	}
	g := &gen{Dir: name, Generation: d.Generation, Hash: hash, Replicas: d.Replicas, TLS: servesTLS(d)}
	if d.BundleURL != "" {
		// The replicas fetch their BARs and configurations themselves,
		// with a token that opens this generation's bundle alone.
		if err := os.WriteFile(filepath.Join(tmp, bundleTokenFile), []byte(d.BundleToken.Reveal()), 0o600); err != nil {
			return fail(fmt.Errorf("local: materialising %s: %w", r.key, err))
		}
		if len(d.BundleCA) > 0 {
			if err := os.WriteFile(filepath.Join(tmp, bundleCAFile), d.BundleCA, 0o600); err != nil {
				return fail(fmt.Errorf("local: materialising %s: %w", r.key, err))
			}
			g.BundleCA = true
		}
		g.Bundle = d.BundleURL
		if err := os.Rename(tmp, filepath.Join(r.dir, name)); err != nil {
			return fail(fmt.Errorf("local: materialising %s: %w", r.key, err))
		}
		return g, nil
	}
	seen := map[string]bool{}
	for _, b := range d.BARs {
		if !namePart.MatchString(b.Name) || seen[b.Name] {
			return fail(fmt.Errorf("local: runtime %s: bad or repeated BAR file name %q", r.key, b.Name))
		}
		seen[b.Name] = true
		if err := os.WriteFile(filepath.Join(tmp, "bars", b.Name), b.Data, 0o600); err != nil {
			return fail(fmt.Errorf("local: materialising %s: %w", r.key, err))
		}
		g.BARs = append(g.BARs, b.Name)
	}
	for _, c := range d.Configs {
		if !namePart.MatchString(c.Type) || !namePart.MatchString(c.Name) {
			return fail(fmt.Errorf("local: runtime %s: bad configuration name %q of type %q", r.key, c.Name, c.Type))
		}
		if err := configuration.Materialise(filepath.Join(tmp, "config"), c.Type, c.Name, c.Data); err != nil {
			// The error names the configuration, never its data.
			return fail(fmt.Errorf("local: runtime %s: configuration %s (%s): %w", r.key, c.Name, c.Type, err))
		}
	}
	if err := os.Rename(tmp, filepath.Join(r.dir, name)); err != nil {
		return fail(fmt.Errorf("local: materialising %s: %w", r.key, err))
	}
	return g, nil
}

// observe reports the runtime from the supervisor's latest pass.
func (r *runtimeState) observe() orchestrator.Observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	o := orchestrator.Observed{Restarts: st.Restarts, LastError: st.LastError}
	// The serving generation is the newest one with a ready replica.
	var serving *gen
	for _, g := range st.Gens {
		o.Replicas += len(g.Procs)
		for _, p := range g.Procs {
			if !p.Stopping && r.ready[p.PID] {
				serving = g
			}
		}
	}
	if serving != nil {
		o.Generation = serving.Generation
		for _, p := range serving.Procs {
			if !p.Stopping && p.Slot < serving.Replicas && r.ready[p.PID] {
				o.AvailableReplicas++
				o.AdminURLs = append(o.AdminURLs, "http://"+hostPort(r.b.dialHost, p.AdminPort))
				if o.AdminURL == "" {
					o.AdminURL = "http://" + hostPort(r.b.dialHost, p.AdminPort)
					o.AdminToken = r.adminToken
				}
			}
		}
	}
	if st.Replicas > 0 {
		// The scheme of what serves, else of what is coming.
		g := serving
		if g == nil {
			g = st.gen(st.Target)
		}
		o.BaseURL = r.baseURL(g)
	}
	o.Progressing = r.progressing()
	o.Restarting, o.CannotRun = r.restarting()
	return o
}

// crashLoopLimit is how many starts in a row of a generation that never
// served may exit before it is reported as one that cannot run (it is
// still retried, with backoff: a port or a file may come back).
const crashLoopLimit = 3

// restarting says whether a replica of the wanted generation crashed and
// is being restarted, or else why that generation cannot run at all.
// Called with r.mu held.
func (r *runtimeState) restarting() (restarting bool, cannotRun string) {
	st := r.st
	t := st.gen(st.Target)
	if t == nil || st.Replicas == 0 {
		return false, ""
	}
	notReady := map[int]bool{}
	for _, p := range t.Procs {
		if !p.Stopping && !r.ready[p.PID] {
			notReady[p.Slot] = true
		}
	}
	for slot, br := range t.Backoff {
		if slot >= st.Replicas || br.Failures == 0 {
			continue
		}
		switch {
		case br.StartFailed:
			cannotRun = "its replicas cannot be started: " + st.LastError
		case !t.Served && br.Failures >= crashLoopLimit:
			cannotRun = fmt.Sprintf("it exits before it is ready, %d times in a row: %s", br.Failures, st.LastError)
		case br.Pending || notReady[slot]:
			restarting = true
		}
	}
	if cannotRun != "" {
		return false, cannotRun
	}
	return restarting, ""
}

// progressing says whether the processes differ from the desired state:
// a rollout, a scale, a start or a stop under way. Called with r.mu held.
func (r *runtimeState) progressing() bool {
	st := r.st
	for _, g := range st.Gens {
		// Any other generation is still draining, or its directory (and
		// secrets) is still to be removed.
		if g.Dir != st.Target {
			return true
		}
	}
	t := st.gen(st.Target)
	if t == nil {
		return false
	}
	ready := 0
	for _, p := range t.Procs {
		if p.Stopping {
			return true
		}
		if r.ready[p.PID] {
			ready++
		}
	}
	return ready != st.Replicas || len(t.Procs) != st.Replicas
}

// waitPasses blocks until the supervisor has completed n more passes or
// ctx ends; tests use it to see the effect of a change.
func (r *runtimeState) waitPasses(ctx context.Context, n int) error {
	r.mu.Lock()
	target := r.passes + n
	r.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.passDone.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.passes < target {
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-r.ended:
			return errClosed
		default:
		}
		r.passDone.Wait()
	}
	return nil
}

// stopAll makes every process drain and waits until they are gone: up to
// the stop timeout or until ctx ends, then they are killed. Called after
// halt, so the supervisor no longer starts anything.
func (r *runtimeState) stopAll(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	deadline := time.Now().Add(r.b.opts.StopTimeout)
	for _, g := range r.st.Gens {
		for _, p := range g.Procs {
			r.signal(g, p, syscall.SIGTERM)
		}
	}
	killed := false
	for {
		remaining := 0
		for _, g := range r.st.Gens {
			for _, p := range g.Procs {
				if ok, _ := r.alive(g, p); ok {
					remaining++
				}
			}
		}
		if remaining == 0 {
			return
		}
		if !killed && (ctx.Err() != nil || time.Now().After(deadline)) {
			r.b.log.Warn("replicas did not drain in time; killing them", "runtime", r.key.String(), "processes", remaining)
			for _, g := range r.st.Gens {
				for _, p := range g.Procs {
					r.signal(g, p, syscall.SIGKILL)
				}
			}
			killed = true
			deadline = time.Now().Add(5 * time.Second)
		} else if killed && time.Now().After(deadline) {
			r.b.log.Error("replicas survived SIGKILL", "runtime", r.key.String(), "processes", remaining)
			return
		}
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		r.mu.Lock()
	}
}

// describeExit is the LastError of a replica that ended on its own: how it
// ended and the error it logged last, if any.
func (r *runtimeState) describeExit(p *proc, exitErr error) string {
	how := "is gone"
	if exitErr != nil {
		how = "exited: " + exitErr.Error()
	} else if r.children[p.PID] != nil {
		how = "exited with status 0"
	}
	msg := fmt.Sprintf("replica %d (pid %d) %s", p.Slot, p.PID, how)
	if last := lastLoggedError(r.logPath(p.Slot), p.LogOffset); last != "" {
		msg += ": " + last
	}
	return msg
}

// trimError keeps a status message short.
func trimError(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}
