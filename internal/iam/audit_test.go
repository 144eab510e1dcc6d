package iam

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// batchObserver is a real SQLite store that reports the size of every
// audit transaction and can hold one back until released.
type batchObserver struct {
	store.Store
	mu      sync.Mutex
	sizes   []int
	entered chan struct{} // a write has started
	hold    chan struct{} // closed: writes go on
}

func (b *batchObserver) InsertAuditEvents(ctx context.Context, evs []store.AuditEvent) error {
	b.entered <- struct{}{}
	<-b.hold
	b.mu.Lock()
	b.sizes = append(b.sizes, len(evs))
	b.mu.Unlock()
	return b.Store.InsertAuditEvents(ctx, evs)
}

// release lets the held writes go on once no Record has returned yet
// (none may before its event's commit), then waits for every Record and
// checks that each succeeded.
func (b *batchObserver) release(t *testing.T, wg *sync.WaitGroup, errs chan error) {
	t.Helper()
	select {
	case err := <-errs:
		t.Fatalf("a Record returned (%v) before its event's commit", err)
	default:
	}
	close(b.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func newBatchObserver(t *testing.T) *batchObserver {
	t.Helper()
	st, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &batchObserver{Store: st, entered: make(chan struct{}, 64), hold: make(chan struct{})}
}

// TestAuditorCommitsALoneEventAtOnce: a single caller's event is written
// without waiting for the gathering window (here an hour, which the test
// would never outlive), and it is durable when Record returns.
func TestAuditorCommitsALoneEventAtOnce(t *testing.T) {
	ctx := context.Background()
	obs := newBatchObserver(t)
	close(obs.hold)
	a := NewAuditor(obs)
	a.window = time.Hour
	defer a.Close()
	for i := range 3 {
		ev := store.AuditEvent{At: clocktest.Epoch().Add(time.Duration(i) * time.Second), InstanceID: "i1", Actor: "user:a", Action: "token.issue", Object: "k", Outcome: OutcomeSuccess}
		if err := a.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := obs.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "i1"})
	if err != nil || len(evs) != 3 {
		t.Fatalf("after three Records alone the store holds %d events (%v); want 3", len(evs), err)
	}
	if fmt.Sprint(obs.sizes) != "[1 1 1]" {
		t.Fatalf("transactions of %v events; want one per lone event", obs.sizes)
	}
}

// TestAuditorGroupsConcurrentEvents: events that queue up while a commit
// is in flight are written together in the next transaction (group
// commit under concurrency), and every caller returns only after its
// event's commit.
func TestAuditorGroupsConcurrentEvents(t *testing.T) {
	ctx := context.Background()
	obs := newBatchObserver(t)
	a := NewAuditor(obs)
	a.window = 20 * time.Millisecond // the second batch waits this long for more; only progress depends on it
	defer a.Close()
	record := func(i int, wg *sync.WaitGroup, errs chan<- error) {
		defer wg.Done()
		errs <- a.Record(ctx, store.AuditEvent{At: clocktest.Epoch().Add(time.Duration(i) * time.Second), InstanceID: "i1", Actor: "user:a", Action: "token.issue", Object: fmt.Sprint(i), Outcome: OutcomeSuccess})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	wg.Add(1)
	go record(0, &wg, errs)
	<-obs.entered // the first, lone event's commit is in flight and held
	wg.Add(5)
	for i := 1; i <= 5; i++ {
		go record(i, &wg, errs)
	}
	for len(a.reqs) < 5 { // the five queue behind the held commit
		time.Sleep(time.Millisecond)
	}
	obs.release(t, &wg, errs)
	if fmt.Sprint(obs.sizes) != "[1 5]" {
		t.Fatalf("transactions of %v events; want the lone first event, then the five that queued behind it in one", obs.sizes)
	}
	evs, err := obs.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "i1"})
	if err != nil || len(evs) != 6 {
		t.Fatalf("the store holds %d events (%v); want 6", len(evs), err)
	}
}

// BenchmarkSingleCallerExchange measures the latency of one caller's API
// key exchanges, audit commit included, on SQLite with synchronous=FULL
// in the test's temporary directory: with lone events committed at once
// (now) and, interleaved in the same run, with every commit waiting for
// the gathering window (before), and the disk's own floor — one 4 KiB
// write and fsync of a file in the same directory, which every durable
// exchange pays at least once. It reports p50 and p99 of each and the
// ratio of the p99s.
func BenchmarkSingleCallerExchange(b *testing.B) {
	ctx := context.Background()
	t := &testing.T{}
	svc, _, creds := newTestService(t)
	now := svc.Audit
	before := NewAuditor(svc.Store)
	before.alwaysGather = true
	defer before.Close()
	f, err := os.CreateTemp(b.TempDir(), "fsync")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	req := KeyExchangeRequest{APIKey: secret.New(creds.APIKey)}
	var lat [3][]time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		switch i % 3 {
		case 0, 1:
			svc.Audit = now
			if i%3 == 1 {
				svc.Audit = before
			}
			if _, err := svc.ExchangeAPIKeyAlone(ctx, req); err != nil {
				b.Fatal(err)
			}
		case 2:
			if _, err := f.Write(page); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		lat[i%3] = append(lat[i%3], time.Since(t0))
	}
	b.StopTimer()
	svc.Audit = now
	q := func(l []time.Duration, p int) float64 {
		if len(l) == 0 {
			return 0
		}
		slices.Sort(l)
		return float64(l[min(len(l)-1, len(l)*p/100)].Microseconds()) / 1000
	}
	for i, name := range []string{"", "before-", "fsync-"} {
		b.ReportMetric(q(lat[i], 50), name+"p50-ms")
		b.ReportMetric(q(lat[i], 99), name+"p99-ms")
	}
	if p := q(lat[0], 99); p > 0 {
		b.ReportMetric(q(lat[1], 99)/p, "p99-before/now")
	}
}

// TestAuditorRefreshesStatisticsAfterManyWrites: every analyzeEvery
// events written, the pipeline refreshes the audit table's statistics in
// the background (here every 10, on a real SQLite store).
func TestAuditorRefreshesStatisticsAfterManyWrites(t *testing.T) {
	ctx := context.Background()
	obs := newBatchObserver(t)
	close(obs.hold)
	a := NewAuditor(obs)
	a.analyzeEvery = 10
	a.analyzed = make(chan error, 8)
	defer a.Close()
	for i := range 25 {
		if err := a.Record(ctx, store.AuditEvent{At: clocktest.Epoch().Add(time.Duration(i) * time.Second), InstanceID: "i1", Actor: "user:a", Action: "token.issue", Object: "k", Outcome: OutcomeSuccess}); err != nil {
			t.Fatal(err)
		}
		if i == 9 || i == 19 {
			if err := <-a.analyzed; err != nil { // refreshes run one at a time; wait for this one
				t.Fatalf("analyze after %d events: %v", i+1, err)
			}
		}
	}
	select {
	case err := <-a.analyzed:
		t.Fatalf("a third refresh (%v) after 25 events; want one per 10", err)
	default:
	}
}

// TestAuditorOverlapsCommits: with two commits allowed in flight (as on
// PostgreSQL), a second lone event is written while the first one's
// commit is still held, and the events that come while both are held make
// one batch that goes to the first writer to finish; no caller returns
// before its own event's commit.
func TestAuditorOverlapsCommits(t *testing.T) {
	ctx := context.Background()
	obs := newBatchObserver(t)
	a := newAuditor(obs, 2)
	a.window = time.Millisecond // the third batch's window: only progress depends on it
	defer a.Close()
	errs := make(chan error, 7)
	var wg sync.WaitGroup
	record := func(i int) {
		wg.Go(func() {
			errs <- a.Record(ctx, store.AuditEvent{At: clocktest.Epoch().Add(time.Duration(i) * time.Second), InstanceID: "i1", Actor: "user:a", Action: "token.issue", Object: fmt.Sprint(i), Outcome: OutcomeSuccess})
		})
	}
	record(0)
	<-obs.entered // the first commit is in flight and held
	record(1)
	<-obs.entered // so is the second, beside it
	for i := 2; i <= 6; i++ {
		record(i)
	}
	for a.waiting.Load() < 7 || len(a.reqs) > 0 { // all seven in the pipeline, the last five in the third batch
		time.Sleep(time.Millisecond)
	}
	obs.release(t, &wg, errs)
	sizes := slices.Clone(obs.sizes)
	slices.Sort(sizes)
	if fmt.Sprint(sizes) != "[1 1 5]" {
		t.Fatalf("transactions of %v events; want the two lone events committing side by side, then the five that came meanwhile in one", obs.sizes)
	}
	evs, err := obs.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "i1"})
	if err != nil || len(evs) != 7 {
		t.Fatalf("the store holds %d events (%v); want 7", len(evs), err)
	}
	if n := a.waiting.Load(); n != 0 {
		t.Fatalf("%d events still counted as waiting", n)
	}
}
