package runtime_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/httplimit/httplimittest"
)

// TestSlowClientsAreCutOff trickles requests at the flows' and the admin
// listener over real TCP, one byte at a time and more often than any
// limit, with serverconf's read limits made short: both close the
// connection. A trace stream, which must outlive those limits and the
// write limit, still delivers events after them.
func TestSlowClientsAreCutOff(t *testing.T) {
	conf := configDir(t, map[string]string{"serverconf/server.yaml": "http:\n  readHeaderTimeout: 1s\n  readTimeout: 2s\n  writeTimeout: 1s\n"})
	p := startRuntime(t, "--bar", buildBAR(t, "../../examples/hello"), "--config-dir", conf)
	every := 250 * time.Millisecond
	long := strings.Repeat("a", 10000)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	do(t, "POST", p.adminURL("/trace/user/start"), nil)
	events := sseEvents(t, ctx, p.adminURL("/trace/user/stream"))

	for _, addr := range []string{p.listen, p.admin} {
		httplimittest.SlowLoris(t, addr, "GET /hello/x HTTP/1.1\r\nHost: x\r\n", "X-Slow: "+long, every)
		httplimittest.SlowLoris(t, addr, "POST /hello/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n", long, every)
	}

	// The slow clients took longer than the read and write limits; the
	// stream opened before them still works.
	if a := get(t, p.url("/hello/late")); a.status != 200 {
		t.Fatalf("hello after the slow clients: %d %s", a.status, a.body)
	}
	for {
		ev := receive(t, events, "the trace event of the late request")
		if ev == nil {
			t.Fatal("the trace stream ended after the read limit")
		}
		if strings.Contains(fmt.Sprint(ev), "/hello/late") || strings.Contains(fmt.Sprint(ev), "late") {
			break
		}
	}
}
