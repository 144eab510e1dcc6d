package natsconn

import (
	"sync"
	"sync/atomic"
)

// workers runs a trigger's messages on at most max goroutines that live
// as long as the consumer. The subscription's goroutine hands each
// message to an idle worker, starts one while fewer than max exist, or
// waits (the message, and those behind it, wait in the client — or, for
// JetStream, on the server, as MaxAckPending is max). A goroutine per
// message would start with a small stack and grow it again for every run
// of the flow engine; a worker keeps its grown stack, and max bounds the
// runs at once as maxInFlight says.
type workers[T any] struct {
	work    chan T
	stop    <-chan struct{} // the runtime stopped: workers and waits end
	handle  func(T)
	max     int32
	started atomic.Int32
	wg      sync.WaitGroup
	once    sync.Once
}

func newWorkers[T any](max int, stop <-chan struct{}, handle func(T)) *workers[T] {
	return &workers[T]{work: make(chan T), stop: stop, handle: handle, max: int32(max)}
}

// dispatch hands m to a worker, waiting for one when max are busy. It
// reports false when the runtime stopped first (m was not handled).
func (w *workers[T]) dispatch(m T) bool {
	select {
	case w.work <- m:
		return true
	default:
	}
	// Only the subscription's goroutine dispatches, so the count cannot
	// pass max between the check and the increment.
	if w.started.Load() < w.max {
		w.started.Add(1)
		w.wg.Add(1)
		go w.run(m)
		return true
	}
	select {
	case w.work <- m:
		return true
	case <-w.stop:
		return false
	}
}

func (w *workers[T]) run(m T) {
	defer w.wg.Done()
	w.handle(m)
	for {
		select {
		case m, ok := <-w.work:
			if !ok {
				return
			}
			w.handle(m)
		case <-w.stop:
			return
		}
	}
}

// close lets the workers finish what they hold and end, and waits for
// them. Nothing may be dispatched after (the subscription has ended).
func (w *workers[T]) close() {
	w.once.Do(func() { close(w.work) })
	w.wg.Wait()
}
