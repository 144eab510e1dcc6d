package runtime

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// handoverGrace bounds how long a drain waits for connections that were
// accepted but have not sent their request yet.
const handoverGrace = 2 * time.Second

// handoverListener is the flows' listener. It knows which accepted
// connections have not delivered a request yet, because http.Server's
// Shutdown drops a request that it finishes reading after the shutdown
// began: a client that connected just before a drain would see its
// connection closed without an answer, and could not retry (the
// connection was new, not reused).
type handoverListener struct {
	net.Listener
	mu      sync.Mutex
	fresh   map[net.Conn]struct{} // accepted, no request read yet
	changed chan struct{}         // signalled when fresh shrinks
}

func newHandoverListener(ln net.Listener) *handoverListener {
	return &handoverListener{Listener: ln, fresh: map[net.Conn]struct{}{}, changed: make(chan struct{}, 1)}
}

// Accept counts a connection as fresh before the server sees it, so no
// connection escapes the count between Accept and its first ConnState.
func (l *handoverListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.fresh[c] = struct{}{}
		l.mu.Unlock()
	}
	return c, err
}

// connState is the server's ConnState hook: any state after StateNew
// means the connection's first request was read (or it is gone).
func (l *handoverListener) connState(c net.Conn, s http.ConnState) {
	if s == http.StateNew {
		return
	}
	l.mu.Lock()
	_, ok := l.fresh[c]
	delete(l.fresh, c)
	l.mu.Unlock()
	if ok {
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
}

func (l *handoverListener) freshCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.fresh)
}

// handOver is the first step of a drain. It stops accepting (the kernel
// moves connections still queued on this SO_REUSEPORT listener to the
// port's other listeners when net.ipv4.tcp_migrate_req is set), turns
// keep-alives off so clients reconnect, to the replicas that stay, after
// their current request, and waits up to grace for the connections it
// already accepted to deliver their request, so that Shutdown serves
// them instead of dropping them.
func (l *handoverListener) handOver(srv *http.Server, grace time.Duration) {
	srv.SetKeepAlivesEnabled(false)
	l.Listener.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	for l.freshCount() > 0 {
		select {
		case <-l.changed:
		case <-t.C:
			return
		}
	}
}
