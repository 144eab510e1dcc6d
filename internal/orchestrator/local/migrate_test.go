package local

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel hands connections queued on a closing SO_REUSEPORT listener
// to another listener of the port once the backend enabled
// net.ipv4.tcp_migrate_req; without it they are reset, and a rolling
// redeploy fails the requests that were waiting to be accepted.
func TestClosingListenerHandsQueuedConnectionsOver(t *testing.T) {
	enableMigrateReq(slog.New(slog.DiscardHandler))
	if v, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req"); err != nil || strings.TrimSpace(string(v)) != "1" {
		t.Skipf("net.ipv4.tcp_migrate_req cannot be enabled here (%q, %v)", v, err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		if err != nil {
			return err
		}
		return serr
	}}
	ctx := context.Background()
	old, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	next, err := lc.Listen(ctx, "tcp", old.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()

	// Connections spread over both listeners; nobody accepts on old.
	const n = 64
	for i := range n {
		c, err := net.Dial("tcp", old.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	seen := map[byte]bool{}
	for len(seen) < n {
		next.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
		c, err := next.Accept()
		if err != nil {
			t.Fatalf("only %d of %d connections reached the remaining listener: %v", len(seen), n, err)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatalf("a handed-over connection lost its data: %v", err)
		}
		seen[b[0]] = true
		c.Close()
	}
}
