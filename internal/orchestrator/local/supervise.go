package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/internal/orchestrator"
)

// logCheckEvery is how often replica log sizes are checked against the cap.
const logCheckEvery = 10 * time.Second

// supervise drives the runtime's processes to its desired state until the
// runtime is deleted or the backend closed. It is level-triggered: every
// pass looks at what runs and corrects it, whatever happened in between
// (a crash, a control-plane restart, an Apply).
func (r *runtimeState) supervise() {
	defer r.b.wg.Done()
	defer func() {
		r.probe.CloseIdleConnections()
		close(r.ended)
		r.mu.Lock()
		r.passDone.Broadcast() // waitPasses sees the end
		r.mu.Unlock()
	}()
	first := true
	defer func() {
		if first {
			close(r.firstPass)
		}
	}()
	var lastLogCheck time.Time
	var seen observedSummary // what OnChange was last told about
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-r.halted:
			return
		case <-r.b.stop:
			return
		case <-r.wake:
		case <-timer.C:
		}
		if first && r.adopted {
			r.cleanOrphans()
		}
		busy := r.pass()
		if first {
			close(r.firstPass)
			first = false
		}
		if cb := r.b.opts.OnChange; cb != nil {
			if s := summarise(r.observe()); s != seen {
				seen = s
				cb(r.key)
			}
		}
		if now := r.b.now(); now.Sub(lastLogCheck) >= logCheckEvery {
			lastLogCheck = now
			r.capLogs()
		}
		next := slowTick
		switch busy {
		case busyActive:
			next = fastTick
		case busyWaiting:
			next = waitTick
		}
		timer.Stop()
		select {
		case <-timer.C:
		default:
		}
		timer.Reset(next)
	}
}

// cleanOrphans removes what an interrupted control plane may have left:
// replicas it started but had not recorded yet (told to drain: nothing
// would ever stop them otherwise, and their slots are started again),
// half-written generations and generation directories the state file
// does not know.
func (r *runtimeState) cleanOrphans() {
	r.mu.Lock()
	defer r.mu.Unlock()
	known := map[int]bool{}
	for _, g := range r.st.Gens {
		for _, p := range g.Procs {
			known[p.PID] = true
		}
	}
	for _, pid := range runtimesUnder(r.dir) {
		if known[pid] {
			continue
		}
		r.b.log.Warn("stopping a replica the state file does not know", "runtime", r.key.String(), "pid", pid)
		if err := sendSignal(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			r.b.log.Warn("signalling replica failed", "runtime", r.key.String(), "pid", pid, "err", err)
		}
	}
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !(strings.HasPrefix(name, ".tmp-") || strings.HasPrefix(name, "gen-")) {
			continue
		}
		if r.st.gen(name) != nil {
			continue
		}
		if err := os.RemoveAll(filepath.Join(r.dir, name)); err == nil {
			r.b.log.Info("removed leftover generation directory", "runtime", r.key.String(), "dir", name)
		}
	}
}

// observedSummary is what of Observed a change is told for.
type observedSummary struct {
	generation                            int64
	replicas, available, restarts, admins int
	lastError, cannotRun, baseURL         string
	progressing, restarting               bool
}

func summarise(o orchestrator.Observed) observedSummary {
	return observedSummary{generation: o.Generation, replicas: o.Replicas, available: o.AvailableReplicas, restarts: o.Restarts,
		admins: len(o.AdminURLs), lastError: o.LastError, cannotRun: o.CannotRun, baseURL: o.BaseURL,
		progressing: o.Progressing, restarting: o.Restarting}
}

type probeTarget struct {
	pid, port int
}

// busyness says how soon the next pass should come.
type busyness int

const (
	idle        busyness = iota
	busyWaiting          // only a backoff or a scale is pending
	busyActive           // processes are starting or stopping
)

// pass is one round of supervision. It answers how busy the runtime is,
// so the next pass comes soon when something is under way.
func (r *runtimeState) pass() busyness {
	r.mu.Lock()
	changed := r.reap()
	var targets []probeTarget
	for _, g := range r.st.Gens {
		for _, p := range g.Procs {
			if !p.Stopping {
				targets = append(targets, probeTarget{p.PID, p.AdminPort})
			}
		}
	}
	r.mu.Unlock()

	results := r.probeAll(targets)

	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(results)
	if r.converge() {
		changed = true
	}
	if changed {
		if err := writeState(r.dir, r.st); err != nil {
			r.b.log.Error("saving runtime state failed", "runtime", r.key.String(), "err", err)
		}
	}
	r.passes++
	r.passDone.Broadcast()
	for _, g := range r.st.Gens {
		for _, p := range g.Procs {
			if p.Stopping || !r.ready[p.PID] {
				return busyActive
			}
		}
	}
	if r.progressing() {
		return busyWaiting
	}
	for _, g := range r.st.Gens {
		for _, br := range g.Backoff {
			if br.Pending {
				return busyWaiting
			}
		}
	}
	return idle
}

// reap drops the processes that are gone. One that was not told to stop
// crashed: that is recorded with its last logged error, and its slot
// backs off before the restart. Called with r.mu held.
func (r *runtimeState) reap() (changed bool) {
	now := r.b.now()
	for _, g := range r.st.Gens {
		kept := g.Procs[:0]
		for _, p := range g.Procs {
			ok, exitErr := r.alive(g, p)
			if ok {
				kept = append(kept, p)
				continue
			}
			changed = true
			delete(r.ready, p.PID)
			delete(r.failed, p.PID)
			delete(r.launched, p.PID)
			delete(r.lastOK, p.PID)
			wasHung := r.hung[p.PID]
			delete(r.hung, p.PID)
			if p.Stopping {
				delete(r.children, p.PID)
				r.b.log.Info("replica stopped", "runtime", r.key.String(), "generation", g.Generation, "slot", p.Slot, "pid", p.PID)
				continue
			}
			msg := r.describeExit(p, exitErr)
			if wasHung {
				msg = fmt.Sprintf("replica %d (pid %d) stopped answering its readiness checks for over %s and was killed",
					p.Slot, p.PID, r.b.opts.HungAfter)
			}
			msg = trimError(msg)
			delete(r.children, p.PID)
			if g.Dir == r.st.Target {
				// A superseded generation's crash says nothing about
				// the spec that is wanted now; it is only logged.
				r.st.LastError = msg
			}
			br := g.retry(p.Slot)
			if now.Sub(p.StartedAt) >= backoffReset {
				br.Failures = 0 // it ran fine for a while: not a crash loop
			}
			br.Failures++
			delay := backoffDelay(br.Failures)
			br.NotBefore = now.Add(delay)
			br.Pending, br.StartFailed = true, false
			r.b.log.Warn("replica crashed", "runtime", r.key.String(), "generation", g.Generation, "slot", p.Slot,
				"pid", p.PID, "failures", br.Failures, "restartIn", delay.String(), "lastError", msg)
		}
		clear(g.Procs[len(kept):])
		g.Procs = kept
	}
	return changed
}

func (g *gen) retry(slot int) *slotRetry {
	if g.Backoff == nil {
		g.Backoff = map[int]*slotRetry{}
	}
	br := g.Backoff[slot]
	if br == nil {
		br = &slotRetry{}
		g.Backoff[slot] = br
	}
	return br
}

// probeAll asks every replica's admin /readyz, concurrently: the first on
// this goroutine (a runtime of one replica starts no goroutine per pass),
// the others each on one of their own, so that a replica that hangs until
// the timeout does not hold up the others' answers.
func (r *runtimeState) probeAll(targets []probeTarget) map[int]bool {
	res := make(map[int]bool, len(targets))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, t := range targets {
		if i == 0 {
			continue
		}
		wg.Go(func() {
			ok := r.probeOne(t.port)
			mu.Lock()
			res[t.pid] = ok
			mu.Unlock()
		})
	}
	if len(targets) > 0 {
		ok := r.probeOne(targets[0].port)
		mu.Lock()
		res[targets[0].pid] = ok
		mu.Unlock()
	}
	wg.Wait()
	return res
}

func (r *runtimeState) probeOne(port int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostPort(r.b.dialHost, port)+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := r.probe.Do(req)
	if err != nil {
		return false
	}
	// Read to the end, so the connection is kept for the next probe.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// record takes in probe results for the processes that still exist. A
// replica becomes ready on one success and stops being ready after a few
// failures in a row. Called with r.mu held.
func (r *runtimeState) record(results map[int]bool) {
	for _, g := range r.st.Gens {
		for _, p := range g.Procs {
			ok, probed := results[p.PID]
			if !probed {
				continue
			}
			if ok {
				if !r.ready[p.PID] {
					attrs := []any{"runtime", r.key.String(), "generation", g.Generation, "slot", p.Slot, "pid", p.PID}
					if at, ok := r.launched[p.PID]; ok {
						attrs = append(attrs, "startup", r.b.now().Sub(at).String())
						delete(r.launched, p.PID)
					}
					r.b.log.Info("replica ready", attrs...)
				}
				r.ready[p.PID] = true
				r.failed[p.PID] = 0
				r.lastOK[p.PID] = r.b.now()
				g.Served = true
				continue
			}
			r.failed[p.PID]++
			if r.ready[p.PID] && r.failed[p.PID] >= unreadyAfter {
				r.b.log.Warn("replica not ready", "runtime", r.key.String(), "generation", g.Generation, "slot", p.Slot, "pid", p.PID)
				r.ready[p.PID] = false
			}
			// A replica that answered once and then stopped answering for
			// long is hung (a deadlock, a stopped process): it is killed,
			// and restarted like a crash.
			if last, seen := r.lastOK[p.PID]; seen && r.b.opts.HungAfter > 0 && r.b.now().Sub(last) > r.b.opts.HungAfter && !r.hung[p.PID] {
				r.b.log.Warn("replica stopped answering; killing it", "runtime", r.key.String(), "generation", g.Generation,
					"slot", p.Slot, "pid", p.PID, "silentFor", r.b.now().Sub(last).Round(time.Second).String())
				r.hung[p.PID] = true
				r.signal(g, p, syscall.SIGKILL)
			}
		}
	}
}

// converge starts, stops and retires processes towards the desired state.
// Called with r.mu held; starting a process takes a few milliseconds.
func (r *runtimeState) converge() (changed bool) {
	st := r.st
	target := st.gen(st.Target)
	if st.Replicas == 0 {
		target = nil
	}
	// Older generations serve until the target is fully ready; then they
	// drain. The new listeners already share the port, so no connection
	// finds it closed.
	// A generation that never served (say, superseded while it was still
	// starting, or crash-looping) has nothing to hand over: it goes at
	// once.
	if target != nil {
		allReady := r.readyCount(target) >= st.Replicas
		for _, g := range st.Gens {
			if g != target && !g.Retiring && (allReady || !g.Served) {
				g.Retiring = true
				changed = true
				r.b.log.Info("generation retiring", "runtime", r.key.String(), "generation", g.Generation,
					"replacedBy", target.Generation, "served", g.Served)
			}
		}
	}
	now := r.b.now()
	kept := st.Gens[:0]
	for _, g := range st.Gens {
		want := g.Replicas
		switch {
		case g == target:
			want = st.Replicas
		case target == nil || g.Retiring:
			want = 0
		}
		if r.scale(g, want, now) {
			changed = true
		}
		if want == 0 && len(g.Procs) == 0 && g != target {
			// Its processes are gone: its materialised secrets go too.
			if err := os.RemoveAll(filepath.Join(r.dir, g.Dir)); err != nil {
				r.b.log.Error("removing generation directory failed", "runtime", r.key.String(), "dir", g.Dir, "err", err)
				kept = append(kept, g)
				continue
			}
			r.b.log.Info("generation removed", "runtime", r.key.String(), "generation", g.Generation, "dir", g.Dir)
			changed = true
			continue
		}
		kept = append(kept, g)
	}
	clear(st.Gens[len(kept):])
	st.Gens = kept
	return changed
}

// readyCount is the number of g's wanted replicas that are ready.
func (r *runtimeState) readyCount(g *gen) int {
	n := 0
	for _, p := range g.Procs {
		if !p.Stopping && p.Slot < g.Replicas && r.ready[p.PID] {
			n++
		}
	}
	return n
}

// scale makes g run want replicas in slots 0…want-1: missing ones start
// (unless their slot is backing off), extra ones are told to drain, and
// ones that drain for too long are killed.
func (r *runtimeState) scale(g *gen, want int, now time.Time) (changed bool) {
	running := map[int]bool{}
	for _, p := range g.Procs {
		switch {
		case p.Stopping:
			if now.Sub(p.StopSent) > r.b.opts.StopTimeout {
				r.b.log.Warn("replica did not drain in time; killing it", "runtime", r.key.String(), "pid", p.PID)
				r.signal(g, p, syscall.SIGKILL)
			}
		case p.Slot >= want:
			r.signal(g, p, syscall.SIGTERM)
			p.Stopping, p.StopSent = true, now
			changed = true
			r.b.log.Info("replica stopping", "runtime", r.key.String(), "generation", g.Generation, "slot", p.Slot, "pid", p.PID)
		default:
			running[p.Slot] = true
		}
	}
	for slot := range g.Backoff {
		if slot >= want {
			delete(g.Backoff, slot)
			changed = true
		}
	}
	for slot := 0; slot < want; slot++ {
		if running[slot] {
			continue
		}
		br := g.Backoff[slot]
		if br != nil && now.Before(br.NotBefore) {
			continue
		}
		var p *proc
		var s *started
		err := r.portFree()
		if err == nil {
			p, s, err = r.startProcess(g, slot)
		}
		changed = true
		if err != nil {
			br = g.retry(slot)
			br.Failures++
			br.NotBefore = now.Add(backoffDelay(br.Failures))
			br.Pending, br.StartFailed = true, true
			r.st.LastError = trimError(err.Error())
			r.b.log.Error("starting replica failed", "runtime", r.key.String(), "generation", g.Generation, "slot", slot, "err", err)
			continue
		}
		r.children[p.PID] = s
		r.launched[p.PID] = r.b.now()
		g.Procs = append(g.Procs, p)
		if br != nil && br.Pending {
			br.Pending = false
			r.st.Restarts++
		}
	}
	return changed
}

// portFree checks, when none of the runtime's processes runs, that nothing
// else listens on its port. Replicas share the port through SO_REUSEPORT,
// which would as readily share it with an unrelated process of the same
// user (say, a runtime of another control plane's data directory that got
// the same port while this one was stopped): the two would split the
// traffic. Called with r.mu held.
func (r *runtimeState) portFree() error {
	for _, g := range r.st.Gens {
		if len(g.Procs) > 0 {
			return nil // ours hold it
		}
	}
	ln, err := net.Listen("tcp", hostPort(r.b.opts.Host, r.port()))
	if err != nil {
		return fmt.Errorf("local: port %d of runtime %s is taken by another process: %w", r.port(), r.key, err)
	}
	ln.Close()
	return nil
}
