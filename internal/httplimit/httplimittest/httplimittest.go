// Package httplimittest holds a slow-loris client for tests of servers'
// time limits: a real TCP client, not a fake server.
package httplimittest

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// Guard bounds how long SlowLoris waits for the server to close the
// connection. It only keeps a broken server from hanging the test; no
// test asserts how long the server took.
const Guard = 90 * time.Second

// SlowLoris connects to addr, sends head at once, then trickles one byte
// of trickle every interval (never finishing the request if trickle is
// long enough) and waits for the server to close the connection. It
// fails the test if the connection is still open after Guard, and returns
// whatever the server answered before closing.
func SlowLoris(t testing.TB, addr, head, trickle string, interval time.Duration) []byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatalf("sending the request head: %v", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; i < len(trickle); i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte{trickle[i]}); err != nil {
				return // the server closed it
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(Guard))
	got, err := io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server kept a slow-loris connection open for %s (answered %q)", Guard, got)
	}
	// EOF (io.ReadAll hides it) or a reset: either way, closed.
	return got
}
