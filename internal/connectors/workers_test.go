package connectors

import (
	"sync"
	"testing"
)

// TestWorkers: at most n messages are handled at once, the next dispatch
// waits for a worker; Idle closes once the handled ones end; after Hold,
// dispatches hand nothing over and report false once stop closes.
func TestWorkers(t *testing.T) {
	stop := make(chan struct{})
	started := make(chan int, 10)
	release := make(chan struct{})
	var mu sync.Mutex
	var handled []int
	w := NewWorkers(3, stop, func(m int) {
		started <- m
		<-release
		mu.Lock()
		handled = append(handled, m)
		mu.Unlock()
	})
	for i := range 3 {
		if !w.Dispatch(i) {
			t.Fatal("dispatch refused")
		}
	}
	for range 3 {
		<-started
	}
	// The three workers are busy: the fourth dispatch waits for one.
	fourth := make(chan bool)
	go func() { fourth <- w.Dispatch(3) }()
	select {
	case <-started:
		t.Fatal("a fourth message ran beside three with a limit of 3")
	case <-w.Idle():
		t.Fatal("idle while messages are handled")
	default:
	}
	release <- struct{}{} // one ends; its worker takes the fourth
	if !<-fourth {
		t.Fatal("fourth dispatch refused")
	}
	if m := <-started; m != 3 {
		t.Fatalf("started %d, want 3", m)
	}
	idle := w.Idle()
	close(release)
	<-idle
	if len(handled) != 4 {
		t.Fatalf("handled %v", handled)
	}

	// Held: nothing more is handed over; the dispatch ends with stop.
	<-w.Hold()
	refused := make(chan bool)
	go func() { refused <- w.Dispatch(4) }()
	close(stop)
	if <-refused {
		t.Fatal("a dispatch after Hold was handed over")
	}
	w.Close()
	if len(handled) != 4 {
		t.Fatalf("handled after Hold: %v", handled)
	}
}
