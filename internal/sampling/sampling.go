// Package sampling owns the control plane's short memory of its runtimes'
// metrics, which the dashboard draws as charts: every Interval (10 s) it
// scrapes the Prometheus /metrics of every ready replica of every runtime
// this process runs, turns each flow's request and error counters and
// duration histogram into the increase over the interval, and keeps those
// per runtime in a bounded ring of at least an hour. Nothing is persisted:
// a restarted control plane starts with empty charts.
//
// Only a process that can reach the runtimes samples: with the local
// backend the one that started them, i.e. the reconciler's leader (on
// PostgreSQL with several control planes, the others have no samples).
// A replica that restarted counts from zero again (a counter reset); one
// that cannot be scraped leaves a gap and an error, never a failure of the
// caller. The runtimes' admin credential goes into the scrape's header and
// nowhere else.
package sampling

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
)

// DefaultInterval is how often runtimes are scraped unless told otherwise.
const DefaultInterval = 10 * time.Second

// Keep is how far back the ring reaches at least.
const Keep = time.Hour

// maxPoints bounds a ring however short the interval (tests sample fast).
const maxPoints = 4000

// maxFlows bounds the flows kept apart per runtime; the rest add up under
// OtherFlows, so a runtime with thousands of flows cannot grow the memory.
const maxFlows = 100

// OtherFlows names the flows past maxFlows of one runtime.
const OtherFlows = "(other flows)"

// maxBody bounds one scrape's answer.
const maxBody = 8 << 20

// Target is one runtime to scrape: the admin listeners of its ready
// replicas and the credential they take.
type Target struct {
	Key   orchestrator.Key
	URLs  []string
	Token secret.Value
}

// Bucket is one cumulative histogram bucket: how many runs took at most
// UpperBound seconds (+Inf for the last).
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Delta is what one flow (or a whole runtime) did during one interval.
type Delta struct {
	Requests float64  // answers and message runs, every status
	Errors   float64  // runs that ended in an error (sluice_flow_errors_total)
	Buckets  []Bucket // increase of the duration histogram, by UpperBound
}

// Point is one sampling interval of a runtime, ending At. A Gap has no
// numbers: no replica could be scraped (or none was ready).
type Point struct {
	At      time.Time
	Seconds float64 // length of the interval the deltas cover
	Gap     bool
	Flows   map[string]Delta // by "project/flow"
}

// Window is what the sampler remembers of one runtime, oldest point first.
type Window struct {
	Points   []Point
	Flows    []string // every flow seen in Points, sorted
	Seq      uint64   // grows with every point recorded; changes mean news
	Err      string   // why the last scrape failed, "" when it worked
	Interval time.Duration
}

// Sampler scrapes runtimes and keeps their recent history.
type Sampler struct {
	// Targets lists what to scrape now (the reconciler leader's ready
	// replicas); nil or empty: nothing.
	Targets  func() []Target
	HTTP     *http.Client
	Now      clock.Func
	Interval time.Duration // default DefaultInterval
	Log      *slog.Logger

	mu  sync.Mutex
	rts map[orchestrator.Key]*history
}

// history is one runtime's ring and the raw counters of its last scrape.
type history struct {
	ring   []Point
	next   int // where the next point goes
	full   bool
	seq    uint64
	primed bool      // a scrape worked once: later new replicas count from zero
	lastAt time.Time // when the last scrape that worked happened
	last   map[string]map[string]raw
	err    string
}

// raw are one flow's counters as one replica reported them.
type raw struct {
	requests, errors float64
	buckets          map[float64]float64
}

func (s *Sampler) interval() time.Duration {
	if s.Interval > 0 {
		return s.Interval
	}
	return DefaultInterval
}

// capacity is the points a ring holds: Keep at the interval, one more so
// the oldest interval still starts an hour back.
func (s *Sampler) capacity() int {
	n := int(Keep/s.interval()) + 1
	return max(2, min(n, maxPoints))
}

func (s *Sampler) client() *http.Client {
	if s.HTTP != nil {
		return s.HTTP
	}
	return &http.Client{Timeout: 5 * time.Second}
}

// Run samples every Interval until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.interval())
	defer t.Stop()
	for {
		s.Sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scrapeResult is one replica's answer.
type scrapeResult struct {
	flows map[string]raw
	err   error
}

// Sample scrapes every target once and records a point for each.
func (s *Sampler) Sample(ctx context.Context) {
	var targets []Target
	if s.Targets != nil {
		targets = s.Targets()
	}
	results := make([][]scrapeResult, len(targets))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, tg := range targets {
		results[i] = make([]scrapeResult, len(tg.URLs))
		for j, u := range tg.URLs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				f, err := s.scrape(ctx, u, tg.Token)
				results[i][j] = scrapeResult{flows: f, err: err}
			}()
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	now := s.Now.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rts == nil {
		s.rts = map[orchestrator.Key]*history{}
	}
	present := map[orchestrator.Key]bool{}
	for i, tg := range targets {
		present[tg.Key] = true
		h := s.rts[tg.Key]
		if h == nil {
			h = &history{ring: make([]Point, s.capacity()), last: map[string]map[string]raw{}}
			s.rts[tg.Key] = h
		}
		s.record(h, tg, results[i], now)
	}
	for k := range s.rts {
		if !present[k] {
			delete(s.rts, k)
		}
	}
}

// record adds one point to h from one pass's answers. Each replica's
// counters are compared with its own previous answer; a replica seen for
// the first time after the first pass started since that pass, so it
// counts from zero. A counter that went down is a restarted replica: its
// whole value is the increase.
func (s *Sampler) record(h *history, tg Target, res []scrapeResult, now time.Time) {
	pt := Point{At: now, Flows: map[string]Delta{}}
	last := map[string]map[string]raw{}
	answered := 0
	before := h.err
	h.err = ""
	defer func() {
		if h.err != "" && before == "" && s.Log != nil {
			s.Log.Debug("runtime metrics not sampled", "runtime", tg.Key.String(), "err", h.err)
		}
	}()
	if len(tg.URLs) == 0 {
		h.err = "no ready replica to sample"
	}
	for j, u := range tg.URLs {
		r := res[j]
		if r.err != nil {
			h.err = r.err.Error()
			if prev, ok := h.last[u]; ok {
				last[u] = prev // the next answer counts from the last one that came
			}
			continue
		}
		answered++
		last[u] = r.flows
		prev, seen := h.last[u]
		if !seen && !h.primed {
			continue // the first pass is the baseline
		}
		for name, cur := range r.flows {
			d := increase(prev[name], cur)
			key := name
			if _, kept := pt.Flows[key]; !kept && len(pt.Flows) >= maxFlows {
				key = OtherFlows
			}
			pt.Flows[key] = add(pt.Flows[key], d)
		}
	}
	h.last = last
	switch {
	case answered == 0:
		pt.Gap = true
		pt.Flows = nil
	case !h.primed:
		h.primed, h.lastAt = true, now
		return
	default:
		pt.Seconds = now.Sub(h.lastAt).Seconds()
		h.lastAt = now
	}
	h.ring[h.next] = pt
	h.next = (h.next + 1) % len(h.ring)
	if h.next == 0 {
		h.full = true
	}
	h.seq++
}

// increase is how much a flow's counters grew from prev to cur; when any
// of them went down the replica restarted and cur is all new.
func increase(prev, cur raw) Delta {
	reset := cur.requests < prev.requests || cur.errors < prev.errors
	for le, c := range cur.buckets {
		if c < prev.buckets[le] {
			reset = true
		}
	}
	if reset {
		prev = raw{}
	}
	d := Delta{Requests: cur.requests - prev.requests, Errors: cur.errors - prev.errors}
	for le, c := range cur.buckets {
		d.Buckets = append(d.Buckets, Bucket{UpperBound: le, Count: c - prev.buckets[le]})
	}
	sort.Slice(d.Buckets, func(i, j int) bool { return d.Buckets[i].UpperBound < d.Buckets[j].UpperBound })
	return d
}

// add sums two deltas; buckets with the same bound add up.
func add(a, b Delta) Delta {
	out := Delta{Requests: a.Requests + b.Requests, Errors: a.Errors + b.Errors}
	m := map[float64]float64{}
	for _, x := range a.Buckets {
		m[x.UpperBound] += x.Count
	}
	for _, x := range b.Buckets {
		m[x.UpperBound] += x.Count
	}
	for le, c := range m {
		out.Buckets = append(out.Buckets, Bucket{UpperBound: le, Count: c})
	}
	sort.Slice(out.Buckets, func(i, j int) bool { return out.Buckets[i].UpperBound < out.Buckets[j].UpperBound })
	return out
}

// Window returns what is remembered of runtime k; false when nothing is
// (not sampled by this process, or not yet).
func (s *Sampler) Window(k orchestrator.Key) (Window, bool) {
	if s == nil {
		return Window{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.rts[k]
	if !ok {
		return Window{}, false
	}
	w := Window{Seq: h.seq, Err: h.err, Interval: s.interval()}
	start, n := 0, h.next
	if h.full {
		start, n = h.next, len(h.ring)
	}
	flows := map[string]bool{}
	for i := 0; i < n; i++ {
		p := h.ring[(start+i)%len(h.ring)]
		for f := range p.Flows {
			flows[f] = true
		}
		w.Points = append(w.Points, p)
	}
	for f := range flows {
		w.Flows = append(w.Flows, f)
	}
	sort.Strings(w.Flows)
	return w, true
}

// Of is the delta of one flow in p, or of all its flows when flow is "".
func (p Point) Of(flow string) Delta {
	if flow != "" {
		return p.Flows[flow]
	}
	var d Delta
	for _, f := range p.Flows {
		d = add(d, f)
	}
	return d
}

// Quantile estimates the q-quantile (0 < q < 1) of the run durations in
// d, in seconds, by linear interpolation inside the bucket it falls in
// (as PromQL's histogram_quantile does); false when d saw no run. A
// quantile in the +Inf bucket is the largest finite bound.
func (d Delta) Quantile(q float64) (float64, bool) {
	if len(d.Buckets) == 0 {
		return 0, false
	}
	total := d.Buckets[len(d.Buckets)-1].Count
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range d.Buckets {
		if b.Count >= rank {
			if math.IsInf(b.UpperBound, 1) {
				return lower, true
			}
			if b.Count == below {
				return b.UpperBound, true
			}
			return lower + (b.UpperBound-lower)*(rank-below)/(b.Count-below), true
		}
		lower, below = b.UpperBound, b.Count
	}
	return lower, true
}

// scrape reads one replica's flow series.
func (s *Sampler) scrape(ctx context.Context, url string, token secret.Value) (map[string]raw, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	if !token.IsZero() {
		req.Header.Set("Authorization", "Bearer "+token.Reveal())
	}
	req.Header.Set("Accept", "text/plain")
	// Uncompressed: a runtime's answer is tens of KB once an interval,
	// not worth deflating in the replica and inflating here, which kept
	// the flate code and tables resident on both sides at idle.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := s.client().Do(req)
	if err != nil {
		// The URL names a local address and port, never the credential.
		return nil, fmt.Errorf("metrics of %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: %s", url, resp.Status)
	}
	return parse(io.LimitReader(resp.Body, maxBody))
}

// parse reads the flow series of a runtime's Prometheus text answer into
// counters by "project/flow": requests of every code and trigger, errors
// of every kind, and the duration buckets of every trigger, added up.
func parse(r io.Reader) (map[string]raw, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("metrics do not parse: %w", err)
	}
	out := map[string]raw{}
	get := func(m *dto.Metric) (string, raw) {
		var project, flow string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "project":
				project = l.GetValue()
			case "flow":
				flow = l.GetValue()
			}
		}
		name := project + "/" + flow
		return name, out[name]
	}
	if f := fams["sluice_flow_requests_total"]; f != nil {
		for _, m := range f.GetMetric() {
			name, r := get(m)
			r.requests += m.GetCounter().GetValue()
			out[name] = r
		}
	}
	if f := fams["sluice_flow_errors_total"]; f != nil {
		for _, m := range f.GetMetric() {
			name, r := get(m)
			r.errors += m.GetCounter().GetValue()
			out[name] = r
		}
	}
	if f := fams["sluice_flow_duration_seconds"]; f != nil {
		for _, m := range f.GetMetric() {
			name, r := get(m)
			if r.buckets == nil {
				r.buckets = map[float64]float64{}
			}
			h := m.GetHistogram()
			inf := false
			for _, b := range h.GetBucket() {
				r.buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				inf = inf || math.IsInf(b.GetUpperBound(), 1)
			}
			if !inf { // the count is the +Inf bucket
				r.buckets[math.Inf(1)] += float64(h.GetSampleCount())
			}
			out[name] = r
		}
	}
	return out, nil
}
