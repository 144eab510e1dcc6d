// Package auditexport copies every committed audit event as one JSON line
// to a file (rotated by size, a number of old files kept) or to standard
// output, for a SIEM to collect (--audit-export).
//
// The export is a copy, never the record. Events reach it only after the
// store committed them, and nothing waits for it: Export only queues. When
// the sink fails or is slower than the events, the writer retries the
// lines it holds and new events wait in a bounded queue; once that is
// full they are left out of the export — counted
// (sluice_audit_export_events_total{result="dropped"}) and logged with the
// time range to read back from GET /api/v1/audit — while the store keeps
// every one of them. So a failing export never loses, delays or fails an
// acknowledged write. Audit events hold no secret values (see
// iam.Auditor) and a line holds nothing but their fields.
package auditexport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/internal/store"
)

// Defaults of the file sink and the queue.
const (
	DefaultMaxBytes = 100 << 20 // a file is rotated before it grows past this
	DefaultKeep     = 5         // rotated files kept: PATH.1 (newest) … PATH.5
	defaultQueue    = 10_000
)

// Line is one exported event: the fields GET /api/v1/audit answers, and
// the instance.
type Line struct {
	ID         string `json:"id"`
	Time       string `json:"time"`
	InstanceID string `json:"instanceId"`
	Actor      string `json:"actor"`
	Action     string `json:"action"`
	Object     string `json:"object"`
	Outcome    string `json:"outcome"`
	Source     string `json:"source"`
	RequestID  string `json:"requestId"`
	Detail     string `json:"detail,omitempty"`
}

// Options configure New.
type Options struct {
	// Target is "stdout" or "file:PATH".
	Target   string
	MaxBytes int64 // file: 0 means DefaultMaxBytes
	Keep     int   // file: rotated files kept; 0 keeps none (the file is cut anew)
	Stdout   io.Writer
	Log      *slog.Logger
	Queue    int // events waiting to be written; 0 means 10,000
	// Retry is the first pause after a failed write (doubling to 30 s);
	// 0 means one second.
	Retry time.Duration
}

// CheckTarget says whether target names a sink ("stdout" or
// "file:PATH"), for flag validation.
func CheckTarget(target string) error {
	switch {
	case target == "stdout":
		return nil
	case strings.HasPrefix(target, "file:") && strings.TrimPrefix(target, "file:") != "":
		return nil
	}
	return fmt.Errorf("%q is not an export target: give stdout or file:PATH", target)
}

// Exporter is the running export; Export feeds it, Close stops it.
type Exporter struct {
	sink  sink
	q     chan store.AuditEvent
	log   *slog.Logger
	retry time.Duration
	done  chan struct{}
	ended chan struct{}
	once  sync.Once

	exported, dropped atomic.Uint64
	// The events left out since the writer last reported (their time
	// range), for the log line that says what to read back.
	mu                     sync.Mutex
	gapFrom, gapTo         time.Time
	gapCount               uint64
	dropLogged, sinkFailed bool
}

type sink interface {
	write(p []byte) error
	close() error
}

// New opens the sink (a file is created 0600 if missing, and appended
// to) and starts the writer.
func New(o Options) (*Exporter, error) {
	if err := CheckTarget(o.Target); err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var s sink
	if o.Target == "stdout" {
		out := o.Stdout
		if out == nil {
			out = os.Stdout
		}
		s = writerSink{out}
	} else {
		max := o.MaxBytes
		if max <= 0 {
			max = DefaultMaxBytes
		}
		r := &rotating{path: strings.TrimPrefix(o.Target, "file:"), max: max, keep: o.Keep}
		if err := r.open(); err != nil {
			return nil, fmt.Errorf("audit export: %w", err)
		}
		s = r
	}
	queue := o.Queue
	if queue <= 0 {
		queue = defaultQueue
	}
	retry := o.Retry
	if retry <= 0 {
		retry = time.Second
	}
	e := &Exporter{sink: s, q: make(chan store.AuditEvent, queue), log: log, retry: retry,
		done: make(chan struct{}), ended: make(chan struct{})}
	go e.run()
	return e, nil
}

// Export queues committed events for the sink. It never blocks: an event
// that finds the queue full is left out of the export (it is in the
// store) and counted.
func (e *Exporter) Export(evs []store.AuditEvent) {
	for _, ev := range evs {
		select {
		case e.q <- ev:
		default:
			e.dropped.Add(1)
			e.mu.Lock()
			if e.gapCount == 0 || ev.At.Before(e.gapFrom) {
				e.gapFrom = ev.At
			}
			if ev.At.After(e.gapTo) {
				e.gapTo = ev.At
			}
			e.gapCount++
			first := !e.dropLogged
			e.dropLogged = true
			e.mu.Unlock()
			if first {
				e.log.Warn("audit export queue is full: events are left out of the export (they stay in the store, readable at GET /api/v1/audit)",
					"queue", cap(e.q))
			}
		}
	}
}

// Stats reports the events written to the sink, those left out, and
// those waiting (the export's lag).
func (e *Exporter) Stats() (exported, dropped uint64, queued int) {
	return e.exported.Load(), e.dropped.Load(), len(e.q)
}

// Close writes what is queued (giving up on a failing sink after one more
// try) and closes the sink. When ctx ends first, the writer is left to
// finish on its own and the sink stays open.
func (e *Exporter) Close(ctx context.Context) error {
	e.once.Do(func() { close(e.done) })
	select {
	case <-e.ended:
		return e.sink.close()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Exporter) run() {
	defer close(e.ended)
	var buf []byte
	for {
		var first store.AuditEvent
		select {
		case first = <-e.q:
		case <-e.done:
			// Closing: write what is still queued, once.
			for {
				select {
				case ev := <-e.q:
					buf = appendLine(buf[:0], ev)
					if e.sink.write(buf) != nil {
						e.dropped.Add(uint64(1 + len(e.q)))
						return
					}
					e.exported.Add(1)
				default:
					return
				}
			}
		}
		n := 1
		buf = appendLine(buf[:0], first)
	more:
		for n < 256 {
			select {
			case ev := <-e.q:
				buf = appendLine(buf, ev)
				n++
			default:
				break more
			}
		}
		if !e.deliver(buf) {
			e.dropped.Add(uint64(n))
			return
		}
		e.exported.Add(uint64(n))
		e.reportGap()
	}
}

// deliver writes one batch of lines, retrying a failing sink with a
// growing pause (new events queue, then drop, meanwhile). It gives up
// only when the exporter closes.
func (e *Exporter) deliver(buf []byte) bool {
	pause := e.retry
	for {
		err := e.sink.write(buf)
		if err == nil {
			if e.sinkFailed {
				e.sinkFailed = false
				e.log.Info("audit export is writing again")
			}
			return true
		}
		if !e.sinkFailed {
			e.sinkFailed = true
			e.log.Warn("audit export cannot write: retrying; events wait in the queue, then are left out of the export (they stay in the store)", "err", err)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-e.done:
			t.Stop()
			return e.sink.write(buf) == nil
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// reportGap logs, once writing goes on, which events the export left out.
func (e *Exporter) reportGap() {
	e.mu.Lock()
	n, from, to := e.gapCount, e.gapFrom, e.gapTo
	e.gapCount, e.dropLogged = 0, false
	e.mu.Unlock()
	if n == 0 {
		return
	}
	e.log.Warn("audit events were left out of the export; read them from the store",
		"events", n, "since", from.UTC().Format(time.RFC3339Nano), "until", to.UTC().Format(time.RFC3339Nano),
		"read", "GET /api/v1/audit?since="+from.UTC().Format(time.RFC3339Nano)+"&until="+to.Add(time.Millisecond).UTC().Format(time.RFC3339Nano))
}

func appendLine(buf []byte, ev store.AuditEvent) []byte {
	b, _ := json.Marshal(Line{ID: ev.ID, Time: ev.At.UTC().Format(time.RFC3339Nano), InstanceID: ev.InstanceID, Actor: ev.Actor,
		Action: ev.Action, Object: ev.Object, Outcome: ev.Outcome, Source: ev.Source, RequestID: ev.RequestID, Detail: ev.Detail})
	buf = append(buf, b...)
	return append(buf, '\n')
}

type writerSink struct{ w io.Writer }

func (s writerSink) write(p []byte) error {
	_, err := s.w.Write(p)
	return err
}

func (writerSink) close() error { return nil }

// rotating is the file sink: PATH grows to max bytes, then becomes
// PATH.1 (PATH.1 becomes PATH.2, and so on; the one past keep is
// deleted) and a new PATH starts. A line is never split across two
// files.
type rotating struct {
	path string
	max  int64
	keep int
	f    *os.File
	size int64
}

func (r *rotating) open() error {
	if err := os.MkdirAll(filepath.Dir(r.path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.f, r.size = f, st.Size()
	return nil
}

func (r *rotating) write(p []byte) error {
	for len(p) > 0 {
		if r.f == nil {
			if err := r.open(); err != nil {
				return err
			}
		}
		// As many whole lines as the file has room for; a line longer
		// than max alone in a file of its own.
		cut := 0
		for cut < len(p) {
			end := len(p)
			if nl := bytes.IndexByte(p[cut:], '\n'); nl >= 0 {
				end = cut + nl + 1
			}
			if r.size+int64(end) > r.max && (cut > 0 || r.size > 0) {
				break
			}
			cut = end
		}
		if cut == 0 {
			if err := r.rotate(); err != nil {
				return err
			}
			continue
		}
		n, err := r.f.Write(p[:cut])
		r.size += int64(n)
		if err != nil {
			// Reopen on the next write: the file may have been removed
			// or the disk freed meanwhile. The lines of this batch
			// already written are written again then; a SIEM
			// deduplicates on the event id.
			r.f.Close()
			r.f = nil
			return err
		}
		p = p[cut:]
	}
	return nil
}

func (r *rotating) rotate() error {
	if err := r.f.Close(); err != nil {
		return err
	}
	r.f = nil
	name := func(i int) string { return r.path + "." + strconv.Itoa(i) }
	if r.keep <= 0 {
		if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return r.open()
	}
	if err := os.Remove(name(r.keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for i := r.keep - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(r.path, name(1)); err != nil {
		return err
	}
	return r.open()
}

func (r *rotating) close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
