package sampling

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
)

// replica serves /metrics the way a runtime's admin listener does (its
// text format, behind the admin credential), with counters the test sets.
type replica struct {
	mu       sync.Mutex
	requests map[string]float64 // code → count, flow hello/hi
	errors   float64
	buckets  [3]float64 // cumulative: ≤0.01, ≤0.1, ≤1; count is buckets[2]+slow
	slow     float64    // runs over 1 s
	down     bool
	encoding string // Accept-Encoding of the last scrape
	srv      *httptest.Server
}

const token = "admin-s3cret"

func newReplica(t *testing.T) *replica {
	r := &replica{requests: map[string]float64{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.encoding = req.Header.Get("Accept-Encoding")
		if r.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "# TYPE sluice_flow_requests_total counter")
		for code, n := range r.requests {
			fmt.Fprintf(w, "sluice_flow_requests_total{code=%q,flow=\"hi\",project=\"hello\",trigger=\"http\"} %g\n", code, n)
		}
		fmt.Fprintln(w, "# TYPE sluice_flow_errors_total counter")
		fmt.Fprintf(w, "sluice_flow_errors_total{flow=\"hi\",kind=\"flow\",project=\"hello\"} %g\n", r.errors)
		fmt.Fprintf(w, "sluice_flow_errors_total{flow=\"hi\",kind=\"timeout\",project=\"hello\"} 0\n")
		fmt.Fprintln(w, "# TYPE sluice_flow_duration_seconds histogram")
		for i, le := range []string{"0.01", "0.1", "1"} {
			fmt.Fprintf(w, "sluice_flow_duration_seconds_bucket{flow=\"hi\",project=\"hello\",trigger=\"http\",le=%q} %g\n", le, r.buckets[i])
		}
		n := r.buckets[2] + r.slow
		fmt.Fprintf(w, "sluice_flow_duration_seconds_bucket{flow=\"hi\",project=\"hello\",trigger=\"http\",le=\"+Inf\"} %g\n", n)
		fmt.Fprintf(w, "sluice_flow_duration_seconds_sum{flow=\"hi\",project=\"hello\",trigger=\"http\"} 1\n")
		fmt.Fprintf(w, "sluice_flow_duration_seconds_count{flow=\"hi\",project=\"hello\",trigger=\"http\"} %g\n", n)
		fmt.Fprintln(w, "# TYPE go_goroutines gauge\ngo_goroutines 12")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// set gives the replica's counters: ok answers, 500s (each also an
// error), and the runs in each latency band (fast ≤10 ms, mid ≤100 ms).
func (r *replica) set(ok, failed, fast, mid float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests["200"], r.requests["500"] = ok, failed
	r.errors = failed
	r.buckets = [3]float64{fast, fast + mid, fast + mid}
}

func TestRatesComeFromCounterDeltas(t *testing.T) {
	clk := clocktest.New(0)
	a, b := newReplica(t), newReplica(t)
	k := orchestrator.Key{InstanceID: "i1", Name: "hello"}
	urls := []string{a.srv.URL, b.srv.URL}
	s := &Sampler{Now: clk.Now, Interval: 10 * time.Second,
		Targets: func() []Target { return []Target{{Key: k, URLs: urls, Token: secret.New(token)}} }}
	ctx := context.Background()

	// Counters from before the control plane started are no interval:
	// the first pass is only the baseline.
	a.set(1000, 10, 900, 110)
	b.set(500, 0, 500, 0)
	s.Sample(ctx)
	if w, _ := s.Window(k); len(w.Points) != 0 {
		t.Fatalf("the first pass recorded %d points; it is the baseline", len(w.Points))
	}

	// 10 s later: a answered 100 more (5 of them 500s), b 50.
	clk.Add(10 * time.Second)
	a.set(1095, 15, 990, 120)
	b.set(550, 0, 540, 10)
	s.Sample(ctx)
	w, ok := s.Window(k)
	if !ok || len(w.Points) != 1 {
		t.Fatalf("window %v %+v", ok, w)
	}
	p := w.Points[0]
	d := p.Of("")
	if p.Gap || p.Seconds != 10 || d.Requests != 150 || d.Errors != 5 {
		t.Fatalf("point %+v delta %+v, want 150 requests and 5 errors over 10 s", p, d)
	}
	if rate := d.Requests / p.Seconds; rate != 15 {
		t.Errorf("rate %g/s, want 15", rate)
	}
	if got := p.Of("hello/hi"); got.Requests != 150 || len(w.Flows) != 1 || w.Flows[0] != "hello/hi" {
		t.Errorf("flow delta %+v, flows %v", got, w.Flows)
	}
	// 150 runs: 130 at most 10 ms, 20 more at most 100 ms. The median is
	// in the first bucket (75/130 of the way), p99 in the second.
	if p50, _ := d.Quantile(0.5); math.Abs(p50-0.01*75/130) > 1e-9 {
		t.Errorf("p50 %g", p50)
	}
	if p99, _ := d.Quantile(0.99); math.Abs(p99-(0.01+0.09*(148.5-130)/20)) > 1e-9 {
		t.Errorf("p99 %g", p99)
	}

	// b restarts: its counters start again from zero. Its whole value is
	// new, not a negative rate.
	clk.Add(10 * time.Second)
	a.set(1095, 15, 990, 120)
	b.set(7, 0, 7, 0)
	s.Sample(ctx)
	w, _ = s.Window(k)
	if d := w.Points[1].Of(""); d.Requests != 7 || d.Errors != 0 {
		t.Errorf("after a restart: %+v, want the 7 new requests", d)
	}
	for _, bk := range w.Points[1].Of("").Buckets {
		if bk.Count < 0 {
			t.Errorf("negative bucket after a reset: %+v", w.Points[1].Of("").Buckets)
		}
	}
}

func TestUnreachableReplicasLeaveGapsAndNewReplicasCountFromZero(t *testing.T) {
	clk := clocktest.New(0)
	a := newReplica(t)
	k := orchestrator.Key{InstanceID: "i1", Name: "hello"}
	var mu sync.Mutex
	urls := []string{a.srv.URL}
	s := &Sampler{Now: clk.Now, Interval: time.Second, Targets: func() []Target {
		mu.Lock()
		defer mu.Unlock()
		return []Target{{Key: k, URLs: urls, Token: secret.New(token)}}
	}}
	ctx := context.Background()
	a.set(10, 0, 10, 0)
	s.Sample(ctx)

	a.mu.Lock()
	a.down = true
	a.mu.Unlock()
	clk.Add(time.Second)
	s.Sample(ctx)
	w, _ := s.Window(k)
	if len(w.Points) != 1 || !w.Points[0].Gap || !strings.Contains(w.Err, "503") {
		t.Fatalf("an unreachable replica: %+v", w)
	}
	if strings.Contains(w.Err, token) {
		t.Fatalf("the error names the admin credential: %s", w.Err)
	}

	// Back, with 20 more; and a second replica that started meanwhile
	// counts from zero.
	a.mu.Lock()
	a.down = false
	a.mu.Unlock()
	a.set(30, 0, 30, 0)
	b := newReplica(t)
	b.set(4, 1, 5, 0)
	mu.Lock()
	urls = append(urls, b.srv.URL)
	mu.Unlock()
	clk.Add(time.Second)
	s.Sample(ctx)
	w, _ = s.Window(k)
	if d := w.Points[1].Of(""); w.Points[1].Gap || d.Requests != 25 || d.Errors != 1 || w.Err != "" {
		t.Fatalf("after the gap: %+v %+v", w.Points[1], w)
	}

	// A runtime that is no longer a target is forgotten.
	mu.Lock()
	urls = nil
	mu.Unlock()
	clk.Add(time.Second)
	s.Sample(ctx)
	w, _ = s.Window(k)
	if !w.Points[len(w.Points)-1].Gap || w.Err == "" {
		t.Errorf("no ready replica: %+v", w)
	}
	s.Targets = nil
	s.Sample(ctx)
	if _, ok := s.Window(k); ok {
		t.Errorf("a runtime that went away is still remembered")
	}
}

func TestRingKeepsAnHourAndNoMore(t *testing.T) {
	clk := clocktest.New(0)
	a := newReplica(t)
	k := orchestrator.Key{InstanceID: "i1", Name: "hello"}
	s := &Sampler{Now: clk.Now, Targets: func() []Target { return []Target{{Key: k, URLs: []string{a.srv.URL}, Token: secret.New(token)}} }}
	if s.capacity() != 361 {
		t.Fatalf("capacity at 10 s: %d, want 361 (an hour of intervals)", s.capacity())
	}
	ctx := context.Background()
	for i := 0; i < 400; i++ {
		a.set(float64(i), 0, float64(i), 0)
		s.Sample(ctx)
		clk.Add(10 * time.Second)
	}
	w, _ := s.Window(k)
	if len(w.Points) != 361 || w.Seq != 399 {
		t.Fatalf("%d points, seq %d", len(w.Points), w.Seq)
	}
	first, last := w.Points[0].At, w.Points[len(w.Points)-1].At
	if last.Sub(first) != time.Hour || !first.Before(last) {
		t.Errorf("window from %s to %s, want an hour, oldest first", first, last)
	}
	if (&Sampler{Interval: time.Millisecond}).capacity() != maxPoints {
		t.Errorf("a fast interval is not bounded")
	}
}

func TestEmptyDataHasNoQuantile(t *testing.T) {
	if _, ok := (Delta{}).Quantile(0.5); ok {
		t.Error("no buckets: a quantile")
	}
	if _, ok := (Delta{Buckets: []Bucket{{0.1, 0}, {math.Inf(1), 0}}}).Quantile(0.99); ok {
		t.Error("no runs: a quantile")
	}
	// Everything slower than the last finite bound: that bound.
	if q, _ := (Delta{Buckets: []Bucket{{0.1, 0}, {1, 0}, {math.Inf(1), 4}}}).Quantile(0.5); q != 1 {
		t.Errorf("p50 in +Inf = %g, want 1", q)
	}
	var s *Sampler
	if _, ok := s.Window(orchestrator.Key{}); ok {
		t.Error("a nil sampler has a window")
	}
	if w, ok := (&Sampler{}).Window(orchestrator.Key{Name: "x"}); ok || len(w.Points) != 0 {
		t.Error("an unsampled runtime has a window")
	}
}

// A scrape asks for the text uncompressed: tens of KB every 10 s are not
// worth gzip's cost, and inflating every answer kept the flate
// decoder's code and tables resident in an idle control plane (and the
// compressor's in every replica).
func TestScrapeAsksForAnUncompressedAnswer(t *testing.T) {
	a := newReplica(t)
	a.set(1, 0, 1, 0)
	k := orchestrator.Key{InstanceID: "i1", Name: "hello"}
	s := &Sampler{Now: clocktest.New(0).Now, Targets: func() []Target { return []Target{{Key: k, URLs: []string{a.srv.URL}, Token: secret.New(token)}} }}
	s.Sample(context.Background())
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.encoding != "identity" {
		t.Errorf("the scrape sent Accept-Encoding %q, want identity", a.encoding)
	}
}
