package runtime

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// handoverGrace bounds how long a drain waits for connections that were
// accepted but have not sent their request yet.
const handoverGrace = 2 * time.Second

// handoverListener is the flows' listener. It knows which accepted
// connections have not had a request reach the handler yet, because
// http.Server's Shutdown drops a request that it finishes reading after
// the shutdown began: a client that connected just before a drain would
// see its connection closed without an answer, and could not retry (the
// connection was new, not reused).
type handoverListener struct {
	net.Listener
	mu    sync.Mutex
	fresh map[net.Conn]struct{} // accepted, no request handled yet
	// accepting counts Accept calls under way: a connection the kernel
	// handed over just before the close is not in fresh yet, and the
	// drain must not miss it (Shutdown would drop its request).
	accepting int
	changed   chan struct{} // signalled when fresh or accepting shrinks
	closing   sync.Once
	closeErr  error
	// tlsConfig, when set, makes every accepted connection a TLS server
	// connection; it is the TLS connection that is counted fresh, as it
	// is what the server's hooks see.
	tlsConfig *tls.Config
}

// Close closes the listener once. The drain closes it in handOver and
// http.Server's Shutdown closes it again if Serve has not yet seen the
// first close; the second close must not read as a failed drain.
func (l *handoverListener) Close() error {
	l.closing.Do(func() { l.closeErr = l.Listener.Close() })
	return l.closeErr
}

type connKey struct{}

// install hooks the listener into the server that serves it: a
// connection stops being fresh when its first request reaches the
// handler (past the server's own shutdown check, so it will be
// answered) or when it closes.
func (l *handoverListener) install(srv *http.Server) {
	next := srv.Handler
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, &servedConn{c: c})
	}
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed || s == http.StateHijacked {
			l.handled(c)
		}
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only a connection's first request takes the listener's lock;
		// the rest of a keep-alive connection's requests (HTTP/2's
		// streams, concurrently) find it handled already.
		if sc, ok := r.Context().Value(connKey{}).(*servedConn); ok && sc.served.CompareAndSwap(false, true) {
			l.handled(sc.c)
		}
		next.ServeHTTP(w, r)
	})
}

// servedConn is a connection as its requests see it, with whether one of
// them has reached the handler.
type servedConn struct {
	c      net.Conn
	served atomic.Bool
}

func newHandoverListener(ln net.Listener) *handoverListener {
	return &handoverListener{Listener: ln, fresh: map[net.Conn]struct{}{}, changed: make(chan struct{}, 1)}
}

// Accept counts a connection as fresh before the server sees it, so no
// connection escapes the count between Accept and its first ConnState.
func (l *handoverListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.accepting++
	l.mu.Unlock()
	c, err := l.Listener.Accept()
	if err == nil && l.tlsConfig != nil {
		c = tls.Server(c, l.tlsConfig)
	}
	l.mu.Lock()
	if err == nil {
		l.fresh[c] = struct{}{}
	}
	l.accepting--
	l.mu.Unlock()
	l.signal()
	return c, err
}

func (l *handoverListener) handled(c net.Conn) {
	l.mu.Lock()
	_, ok := l.fresh[c]
	delete(l.fresh, c)
	l.mu.Unlock()
	if ok {
		l.signal()
	}
}

func (l *handoverListener) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *handoverListener) freshCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.fresh)
}

// pending is the connections accepted without a handled request, and the
// Accept calls that may still return one.
func (l *handoverListener) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.fresh) + l.accepting
}

// handOver is the first step of a drain. It stops accepting (the kernel
// moves connections still queued on this SO_REUSEPORT listener to the
// port's other listeners when net.ipv4.tcp_migrate_req is set), turns
// keep-alives off so clients reconnect, to the replicas that stay, after
// their current request, and waits up to grace for the connections it
// already accepted (or is accepting as it closes) to deliver their
// request, so that Shutdown serves them instead of dropping them.
func (l *handoverListener) handOver(srv *http.Server, grace time.Duration) {
	srv.SetKeepAlivesEnabled(false)
	l.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	for l.pending() > 0 {
		select {
		case <-l.changed:
		case <-t.C:
			return
		}
	}
}
