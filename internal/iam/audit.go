package iam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/internal/store"
)

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeDenied  = "denied"
	OutcomeFailure = "failure"
)

// Auditor is the audit pipeline: Record returns only once the event is
// durable. A lone event is committed at once; when others are already
// waiting (concurrent callers), the pipeline gathers what arrives within
// a short window and writes it in one transaction (group commit), so
// auditing every token costs one commit per batch, not per token, without
// making a single caller wait for a window. On PostgreSQL several batches
// commit at once (pgAuditCommits); each caller still waits for its own
// batch's commit. Audit events never hold
// secret values: callers pass names and ids, and Detail is for non-secret
// context only.
type Auditor struct {
	store  store.IAM
	reqs   chan auditReq
	done   chan struct{}
	once   sync.Once
	window time.Duration // auditWindow; tests shorten or lengthen it
	// alwaysGather makes every batch wait for the window, as the pipeline
	// did before lone events were committed at once: the baseline of
	// BenchmarkSingleCallerExchange, never set outside it.
	alwaysGather bool

	// Log, when set, hears of statistics refreshes that failed.
	Log *slog.Logger
	// Export, when set, is given every event once it is committed, by
	// this pipeline or by Service.Audited (--audit-export). It must not
	// block: the event is durable and its caller waits.
	Export func([]store.AuditEvent)
	// analyzeEvery is how many events the pipeline writes between two
	// refreshes of the audit table's planner statistics.
	analyzeEvery int
	written      atomic.Int64 // events written since the last refresh
	analyzing    atomic.Bool  // a refresh is running
	analyzed     chan error   // tests: each refresh's outcome, when set

	// commits is how many batches may be committing at once (see
	// commitsInFlight); with more than one, batches go to that many
	// writers through batches.
	commits int
	batches chan []auditReq
	writers sync.WaitGroup
	// waiting counts the events handed to the pipeline whose callers
	// have not been answered yet.
	waiting atomic.Int64
}

type auditReq struct {
	ev  store.AuditEvent
	err chan error
}

// maxAuditBatch bounds one transaction of audit events.
const maxAuditBatch = 512

// auditWindow is how long the pipeline gathers events for one commit
// under concurrency: at a few thousand exchanges a second one commit then
// carries ten or more.
const auditWindow = 3 * time.Millisecond

// analyzeAuditEvery is how many events the pipeline writes between two
// ANALYZEs of the audit table. Token exchanges can add thousands of
// events a second; PostgreSQL's autovacuum analyzes a table only after a
// tenth of it changed (and not at all while it is busy elsewhere), and a
// table planned from the statistics of when it was small was once read
// whole for limit=10. Refreshing every 50,000 events costs one ANALYZE
// (a sample of 30,000 rows on PostgreSQL, of 1,000 per index on SQLite)
// per ten seconds or more at full rate.
const analyzeAuditEvery = 50_000

// NewAuditor starts the pipeline; Close stops it.
func NewAuditor(st store.IAM) *Auditor { return newAuditor(st, commitsInFlight(st)) }

// pgAuditCommits is how many audit batches commit at once on PostgreSQL.
// A commit there waits for its WAL flush (the disk's fsync) with the
// database otherwise idle, and concurrent transactions share flushes; with
// one batch in flight at a time, every token exchange waited for the
// window, then for the flush of the batch before its own, and 32 callers
// made at most 32 exchanges per such cycle. Each writer holds one pool
// connection while it commits.
const pgAuditCommits = 4

// commitsInFlight is how many batches the store commits usefully at once:
// PostgreSQL's are concurrent; SQLite has one writer at a time, so a
// second commit would only wait for the first's lock.
func commitsInFlight(st store.IAM) int {
	if k, ok := st.(interface{ Kind() string }); ok && k.Kind() == "postgres" {
		return pgAuditCommits
	}
	return 1
}

func newAuditor(st store.IAM, commits int) *Auditor {
	a := &Auditor{store: st, reqs: make(chan auditReq, maxAuditBatch), done: make(chan struct{}), window: auditWindow,
		analyzeEvery: analyzeAuditEvery, commits: max(commits, 1)}
	if a.commits > 1 {
		a.batches = make(chan []auditReq)
		for range a.commits {
			a.writers.Go(func() {
				for b := range a.batches {
					a.write(b)
				}
			})
		}
	}
	go a.loop()
	return a
}

var errAuditClosed = errors.New("iam: audit pipeline is closed")

// Record writes ev durably. An error means the event was not recorded and
// the action it describes must not be acknowledged.
func (a *Auditor) Record(ctx context.Context, ev store.AuditEvent) error {
	if ev.ID == "" {
		ev.ID = fmt.Sprintf("%016x%s", ev.At.UnixNano(), randomID(4))
	}
	req := auditReq{ev: ev, err: make(chan error, 1)}
	a.waiting.Add(1)
	select {
	case a.reqs <- req:
	case <-a.done:
		a.waiting.Add(-1)
		return errAuditClosed
	case <-ctx.Done():
		a.waiting.Add(-1)
		return ctx.Err()
	}
	select {
	case err := <-req.err:
		return err
	case <-ctx.Done():
		// The write goes on; the caller has given up waiting.
		return ctx.Err()
	}
}

func (a *Auditor) loop() {
	grouped := false // the last batch carried more than one event
	for {
		var first auditReq
		select {
		case first = <-a.reqs:
		case <-a.done:
			if a.batches != nil {
				close(a.batches)
				a.writers.Wait()
			}
			a.drain()
			return
		}
		batch := a.gather([]auditReq{first}, grouped)
		grouped = len(batch) > 1 || a.alwaysGather
		if a.batches == nil {
			a.write(batch)
		} else {
			a.dispatch(batch)
		}
	}
}

// dispatch hands batch to the first free writer. While all are
// committing, events still arriving join the batch (up to
// maxAuditBatch): they would wait for a writer anyway.
func (a *Auditor) dispatch(batch []auditReq) {
	for {
		in := a.reqs
		if len(batch) >= maxAuditBatch {
			in = nil
		}
		select {
		case a.batches <- batch:
			return
		case r := <-in:
			batch = append(batch, r)
		}
	}
}

// gather adds to batch what is already queued and, only when callers are
// concurrent — another event was queued, or the last batch carried more
// than one — what arrives within the window. A single caller's event is
// thus committed at once (it would gain nothing from waiting, and its
// token exchange's latency would be the window), while under load one
// commit still carries many events (a commit costs far more than an
// insert). Events queued while a commit is in flight make the next batch,
// so concurrency is seen as soon as it starts; one lone batch ends it.
func (a *Auditor) gather(batch []auditReq, grouped bool) []auditReq {
queued:
	for len(batch) < maxAuditBatch {
		select {
		case r := <-a.reqs:
			batch = append(batch, r)
		default:
			break queued
		}
	}
	if (len(batch) == 1 && !grouped) || len(batch) >= maxAuditBatch {
		return batch
	}
	window := time.NewTimer(a.window)
	defer window.Stop()
	for len(batch) < maxAuditBatch {
		select {
		case r := <-a.reqs:
			batch = append(batch, r)
		case <-window.C:
			return batch
		}
	}
	return batch
}

func (a *Auditor) write(batch []auditReq) {
	evs := make([]store.AuditEvent, len(batch))
	for i, r := range batch {
		evs[i] = r.ev
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := a.store.InsertAuditEvents(ctx, evs)
	cancel()
	a.waiting.Add(-int64(len(batch)))
	for _, r := range batch {
		r.err <- err
	}
	if err == nil {
		a.committed(evs)
		if a.written.Add(int64(len(evs))) >= int64(a.analyzeEvery) {
			a.written.Store(0)
			a.analyze()
		}
	}
}

// committed hands committed events to the export, if there is one.
func (a *Auditor) committed(evs []store.AuditEvent) {
	if a != nil && a.Export != nil {
		a.Export(evs)
	}
}

// analyze refreshes the audit table's statistics in the background — no
// audit write waits for it — unless a refresh is still running.
func (a *Auditor) analyze() {
	if !a.analyzing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer a.analyzing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := a.store.AnalyzeAudit(ctx)
		if err != nil && a.Log != nil {
			a.Log.Warn("unable to refresh the audit table's statistics", "err", err)
		}
		if a.analyzed != nil {
			a.analyzed <- err
		}
	}()
}

// drain writes what is queued when Close is called.
func (a *Auditor) drain() {
	for {
		select {
		case r := <-a.reqs:
			a.write([]auditReq{r})
		default:
			return
		}
	}
}

// Close stops the pipeline after writing what is queued.
func (a *Auditor) Close() { a.once.Do(func() { close(a.done) }) }
