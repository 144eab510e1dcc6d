package connectors

import (
	"sync"
	"sync/atomic"
)

// Workers runs a trigger's messages on at most max goroutines that live
// as long as the consumer. Dispatch hands each message to an idle
// worker, starts one while fewer than max exist, or waits for one (the
// message, and those behind it, then wait in the client or on the
// server: backpressure, as maxInFlight says). A goroutine per message
// would start with a small stack and grow it again for every run of the
// flow engine; a worker keeps its grown stack.
//
// A source with per-key order (a Kafka partition) dispatches one unit
// per key that handles that key's messages in order; the pool bounds how
// many keys run at once.
type Workers[T any] struct {
	work    chan T
	stop    <-chan struct{} // the consumer stopped: idle workers and waiting dispatches end
	handle  func(T)
	max     int32
	started atomic.Int32
	wg      sync.WaitGroup // the workers
	once    sync.Once

	mu   sync.Mutex
	busy int           // messages being handed over or handled
	idle chan struct{} // closed when busy falls to 0, for Idle and Hold
	held bool
}

// NewWorkers returns a pool of at most n workers (at least one) that
// call handle; none is started before the first message.
func NewWorkers[T any](n int, stop <-chan struct{}, handle func(T)) *Workers[T] {
	return &Workers[T]{work: make(chan T), stop: stop, handle: handle, max: int32(max(n, 1))}
}

// Dispatch hands m to a worker, waiting for one when max are busy. It
// reports false when stop was closed first (m was not handled). It may
// be called from several goroutines.
func (w *Workers[T]) Dispatch(m T) bool {
	w.mu.Lock()
	if w.held {
		w.mu.Unlock()
		<-w.stop
		return false
	}
	w.busy++
	w.mu.Unlock()
	select {
	case w.work <- m:
		return true
	default:
	}
	for {
		n := w.started.Load()
		if n >= w.max {
			break
		}
		if w.started.CompareAndSwap(n, n+1) {
			w.wg.Add(1)
			go w.run(m)
			return true
		}
	}
	select {
	case w.work <- m:
		return true
	case <-w.stop:
		w.done()
		return false
	}
}

func (w *Workers[T]) run(m T) {
	defer w.wg.Done()
	w.do(m)
	for {
		select {
		case m, ok := <-w.work:
			if !ok {
				return
			}
			w.do(m)
		case <-w.stop:
			return
		}
	}
}

func (w *Workers[T]) do(m T) {
	defer w.done()
	w.handle(m)
}

func (w *Workers[T]) done() {
	w.mu.Lock()
	if w.busy--; w.busy == 0 && w.idle != nil {
		close(w.idle)
		w.idle = nil
	}
	w.mu.Unlock()
}

// Idle is closed once no message is being handed over or handled (at
// once if none is): a dispatcher waits on it between messages, e.g.
// before closing a connection whose acknowledgements the runs still
// send.
func (w *Workers[T]) Idle() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.busy == 0 {
		return closed
	}
	if w.idle == nil {
		w.idle = make(chan struct{})
	}
	return w.idle
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Hold stops handing messages over: from now on Dispatch waits until
// stop and reports false, so the source keeps what it has not handed
// over (unacknowledged, for another consumer or session). The returned
// channel is Idle's.
func (w *Workers[T]) Hold() <-chan struct{} {
	w.mu.Lock()
	w.held = true
	w.mu.Unlock()
	return w.Idle()
}

// Close lets the workers finish what they hold and end, and waits for
// them. Nothing may be dispatched after (the subscription has ended).
func (w *Workers[T]) Close() {
	w.once.Do(func() { close(w.work) })
	w.wg.Wait()
}
