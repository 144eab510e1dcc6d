package runtime

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A connection accepted before a drain whose request arrives after the
// drain began is answered, not closed unanswered: its client could not
// retry it (http.Server.Shutdown alone drops such requests).
func TestDrainAnswersConnectionsAcceptedBeforeIt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl := newHandoverListener(ln)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	hl.install(srv)
	go srv.Serve(hl)

	const n = 8
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	waitUntil(t, "the connections to be accepted", func() bool { return hl.freshCount() == n })

	drained := make(chan error, 1)
	go func() {
		hl.handOver(srv, time.Minute)
		drained <- srv.Shutdown(t.Context())
	}()
	// The drain has begun once the listener refuses new connections.
	waitUntil(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	for i, c := range conns {
		fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d: no answer during the drain: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(body) != "ok" || !resp.Close {
			t.Fatalf("connection %d: %d %q close=%v; want 200 ok and Connection: close", i, resp.StatusCode, body, resp.Close)
		}
	}
	if err := <-drained; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// http.Server.Shutdown closes the listeners Serve still tracks, and
// Serve stops tracking one only after its Accept has returned the close
// error: when the drain's Shutdown comes first, it closes the handed-over
// listener a second time and returns that close's error, and a drain with
// nothing in flight read as failed (CI saw "drain did not finish within
// 30s: use of closed network connection" a quarter of a millisecond into
// a drain). A second close of the handover listener is therefore not an
// error.
func TestHandoverListenerClosesOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl := newHandoverListener(ln)
	if err := hl.Close(); err != nil {
		t.Fatalf("first close: %v", err)
	}
	if err := hl.Close(); err != nil {
		t.Fatalf("second close: %v; want nil, so that Shutdown after the handover succeeds", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after Close")
	}
}

// lateListener hands its first connection over only when told, even after
// it was closed: a connection the kernel gave an Accept that was under
// way as the drain closed the listener.
type lateListener struct {
	first  chan net.Conn
	closed chan struct{}
	calls  int
}

func (l *lateListener) Accept() (net.Conn, error) {
	l.calls++ // Serve calls Accept from one goroutine
	if l.calls == 1 {
		return <-l.first, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *lateListener) Close() error   { close(l.closed); return nil }
func (l *lateListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// The drain waits for an Accept that was under way when it closed the
// listener: the connection it returns is answered, not dropped by
// Shutdown before it was counted.
func TestDrainWaitsForAnAcceptUnderWay(t *testing.T) {
	ll := &lateListener{first: make(chan net.Conn), closed: make(chan struct{})}
	hl := newHandoverListener(ll)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	hl.install(srv)
	go srv.Serve(hl)
	waitUntil(t, "Serve to call Accept", func() bool { return hl.pending() == 1 })

	drained := make(chan error, 1)
	go func() {
		hl.handOver(srv, time.Minute)
		drained <- srv.Shutdown(t.Context())
	}()
	<-ll.closed // the drain has begun
	client, server := net.Pipe()
	defer client.Close()
	ll.first <- server
	fmt.Fprintf(client, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil {
		t.Fatalf("the connection accepted as the drain began got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("answer %d %q; want 200 ok", resp.StatusCode, body)
	}
	if err := <-drained; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
