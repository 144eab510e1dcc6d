package runtime

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/httplimit"
)

// Trace types, as App Connect names them: user trace follows each message
// through each step of a flow (for integration developers), service trace
// records what the engine does (loads, requests, schedules, errors; for
// whoever operates the runtime).
const (
	TraceUser    = "user"
	TraceService = "service"
)

// tracer owns both trace buffers. Switched off, a trace costs one atomic
// load per request: no event is built, and the engine gets a nil Tracer.
type tracer struct {
	user, service *traceBuffer
	done          chan struct{} // closed at shutdown: live streams end
	closeOnce     sync.Once
}

func newTracer(maxBytes int, r *redactor) *tracer {
	return &tracer{
		user:    &traceBuffer{kind: TraceUser, maxBytes: maxBytes, redact: r},
		service: &traceBuffer{kind: TraceService, maxBytes: maxBytes, redact: r},
		done:    make(chan struct{}),
	}
}

func (t *tracer) buffer(kind string) *traceBuffer {
	switch kind {
	case TraceUser:
		return t.user
	case TraceService:
		return t.service
	}
	return nil
}

func (t *tracer) close() { t.closeOnce.Do(func() { close(t.done) }) }

// userEvent is one step of one message (a flow.StepEvent as recorded).
type userEvent struct {
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time"`
	Type       string    `json:"type"`
	RequestID  string    `json:"requestId,omitempty"`
	Project    string    `json:"project"`
	Flow       string    `json:"flow"`
	Step       string    `json:"step"`
	DurationMs float64   `json:"durationMs"`
	Input      any       `json:"input,omitempty"`
	Output     any       `json:"output,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// serviceEvent is one engine-level event.
type serviceEvent struct {
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time"`
	Type       string    `json:"type"`
	Event      string    `json:"event"` // trace, load, ready, request, schedule, error, shutdown
	Project    string    `json:"project,omitempty"`
	Flow       string    `json:"flow,omitempty"`
	RequestID  string    `json:"requestId,omitempty"`
	Method     string    `json:"method,omitempty"`
	Path       string    `json:"path,omitempty"`
	Status     int       `json:"status,omitempty"`
	DurationMs float64   `json:"durationMs,omitempty"`
	Message    string    `json:"message,omitempty"`
}

type recorded struct {
	seq  uint64
	line []byte // one JSON object, redacted, no newline
}

// traceBuffer keeps the recent events of one trace type, bounded in bytes
// (oldest dropped first), and fans them out to live subscribers.
type traceBuffer struct {
	kind     string
	maxBytes int
	redact   *redactor
	on       atomic.Bool

	mu      sync.Mutex
	seq     uint64
	events  []recorded
	bytes   int
	evicted uint64
	started time.Time
	stopped time.Time
	subs    map[chan recorded]struct{}
}

// TraceStatus is the admin view of one trace type.
type TraceStatus struct {
	Type      string     `json:"type"`
	Enabled   bool       `json:"enabled"`
	StartedAt *time.Time `json:"startedAt,omitempty"`
	StoppedAt *time.Time `json:"stoppedAt,omitempty"`
	Events    int        `json:"events"`
	Bytes     int        `json:"bytes"`
	Evicted   uint64     `json:"evicted"`
}

func (b *traceBuffer) status() TraceStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := TraceStatus{Type: b.kind, Enabled: b.on.Load(), Events: len(b.events), Bytes: b.bytes, Evicted: b.evicted}
	if !b.started.IsZero() {
		t := b.started
		s.StartedAt = &t
	}
	if !b.stopped.IsZero() {
		t := b.stopped
		s.StoppedAt = &t
	}
	return s
}

// start begins a new recording: the events of the previous one are
// dropped, sequence numbers keep counting so a stream resumes cleanly.
func (b *traceBuffer) start(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.on.Load() {
		return
	}
	b.events, b.bytes, b.evicted = nil, 0, 0
	b.started, b.stopped = now, time.Time{}
	b.on.Store(true)
}

// stop ends the recording; its events stay for download.
func (b *traceBuffer) stop(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.on.Load() {
		return
	}
	b.on.Store(false)
	b.stopped = now
}

func (b *traceBuffer) clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events, b.bytes, b.evicted = nil, 0, 0
}

// record assigns the next sequence number through setSeq, encodes ev,
// redacts it and stores it. Callers check b.on first so that a disabled
// trace builds nothing.
func (b *traceBuffer) record(ev any, setSeq func(uint64)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.on.Load() {
		return
	}
	b.seq++
	setSeq(b.seq)
	line, err := json.Marshal(ev)
	if err != nil {
		// An excerpt JSON cannot hold (NaN from jq, say) must not lose
		// the event: keep its frame and say why the payload is missing.
		line, _ = json.Marshal(map[string]any{"seq": b.seq, "type": b.kind, "error": "event not encodable: " + err.Error()})
	}
	line = b.redact.Bytes(line)
	r := recorded{seq: b.seq, line: line}
	b.events = append(b.events, r)
	b.bytes += len(line) + 1
	for b.bytes > b.maxBytes && len(b.events) > 1 {
		b.bytes -= len(b.events[0].line) + 1
		b.events[0] = recorded{}
		b.events = b.events[1:]
		b.evicted++
	}
	for ch := range b.subs {
		select {
		case ch <- r:
		default:
			// A subscriber that cannot keep up is cut off rather than
			// slowing the flows down; it resumes with Last-Event-ID.
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *traceBuffer) snapshot() []recorded {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]recorded(nil), b.events...)
}

func (b *traceBuffer) subscribe(since uint64, replay bool) (chan recorded, []recorded) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var backlog []recorded
	if replay {
		for _, r := range b.events {
			if r.seq > since {
				backlog = append(backlog, r)
			}
		}
	}
	ch := make(chan recorded, 1024)
	if b.subs == nil {
		b.subs = map[chan recorded]struct{}{}
	}
	b.subs[ch] = struct{}{}
	return ch, backlog
}

func (b *traceBuffer) unsubscribe(ch chan recorded) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[ch]; ok {
		delete(b.subs, ch)
		close(ch)
	}
}

// stepTracer hands one message's step events to the user trace. One is
// made per traced run, so events carry the request id.
type stepTracer struct {
	b         *traceBuffer
	project   string
	requestID string
}

func (t *stepTracer) Step(ev flow.StepEvent) {
	if !t.b.on.Load() {
		return
	}
	u := &userEvent{
		Time:       ev.Start.UTC(),
		Type:       TraceUser,
		RequestID:  t.requestID,
		Project:    t.project,
		Flow:       ev.Flow,
		Step:       ev.Step,
		DurationMs: float64(ev.Duration.Microseconds()) / 1000,
		Input:      ev.Input,
		Output:     ev.Output,
	}
	if ev.Err != nil {
		u.Error = ev.Err.Error()
	}
	t.b.record(u, func(s uint64) { u.Seq = s })
}

var _ flow.Tracer = (*stepTracer)(nil)

// service records an engine-level event when the service trace is on.
func (t *tracer) serviceEvent(ev serviceEvent) {
	if !t.service.on.Load() {
		return
	}
	ev.Type = TraceService
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	t.service.record(&ev, func(s uint64) { ev.Seq = s })
}

// serveStream streams events as server-sent events. With a Last-Event-ID
// header (or ?since=N) it first replays the buffered events after that
// sequence number; ?since=0 replays the whole buffer.
func (t *tracer) serveStream(w http.ResponseWriter, r *http.Request, b *traceBuffer) {
	since, replay := uint64(0), false
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		since, replay = parseSeq(v)
	} else if v := r.URL.Query().Get("since"); v != "" {
		since, replay = parseSeq(v)
		if !replay {
			writeError(w, http.StatusBadRequest, "since must be a sequence number")
			return
		}
	}
	ch, backlog := b.subscribe(since, replay)
	defer b.unsubscribe(ch)

	fl := httplimit.NewStream(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": %s trace\n\n", b.kind)
	for _, ev := range backlog {
		writeSSE(w, ev)
	}
	fl.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			fl.Extend()
			writeSSE(w, ev)
			// Send whatever else is already queued before flushing.
			for drained := false; !drained; {
				select {
				case ev, ok := <-ch:
					if !ok {
						fl.Flush()
						return
					}
					writeSSE(w, ev)
				default:
					drained = true
				}
			}
			fl.Flush()
		case <-ping.C:
			fl.Extend()
			fmt.Fprint(w, ": ping\n\n")
			fl.Flush()
		case <-r.Context().Done():
			return
		case <-t.done:
			return
		}
	}
}

func parseSeq(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func writeSSE(w http.ResponseWriter, ev recorded) {
	fmt.Fprintf(w, "id: %d\nevent: trace\ndata: %s\n\n", ev.seq, ev.line)
}

// serveDownload answers the buffered events as NDJSON (default) or as a
// zip holding the NDJSON and a summary.
func (t *tracer) serveDownload(w http.ResponseWriter, r *http.Request, b *traceBuffer) {
	events := b.snapshot()
	var nd bytes.Buffer
	for _, ev := range events {
		nd.Write(ev.line)
		nd.WriteByte('\n')
	}
	name := b.kind + "-trace"
	switch format := r.URL.Query().Get("format"); format {
	case "", "ndjson":
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.ndjson"`)
		w.Write(nd.Bytes())
	case "zip":
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		summary, _ := json.MarshalIndent(b.status(), "", "  ")
		for _, f := range []struct {
			name string
			data []byte
		}{{name + ".ndjson", nd.Bytes()}, {"summary.json", summary}} {
			fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: time.Now()})
			if err != nil {
				writeError(w, http.StatusInternalServerError, "cannot build the archive")
				return
			}
			fw.Write(f.data)
		}
		if err := zw.Close(); err != nil {
			writeError(w, http.StatusInternalServerError, "cannot build the archive")
			return
		}
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.zip"`)
		w.Write(buf.Bytes())
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown format %q: want ndjson or zip", format))
	}
}
