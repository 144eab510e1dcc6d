package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// benchNATSURL is the machine's NATS server.
func benchNATSURL() string {
	if u := os.Getenv("SLUICE_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// natsBenchRun publishes b.N messages to prefix.in and waits until as
// many arrived on prefix.out: the consumer's cost per message, with the
// server's and this publisher's around it. Core NATS drops what a slow
// consumer cannot hold (64k messages pending): run it with a fixed count
// such as -benchtime 20000x.
func natsBenchRun(b *testing.B, nc *nats.Conn, prefix string) {
	b.Helper()
	var got atomic.Int64
	arrived := make(chan struct{}, 1)
	sub, err := nc.Subscribe(prefix+".out", func(*nats.Msg) {
		got.Add(1)
		select {
		case arrived <- struct{}{}:
		default:
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)
	body := func(i int) []byte {
		data := strconv.AppendInt([]byte(`{"id":`), int64(i), 10)
		return append(data, `,"qty":3,"price":9.99,"t":123456}`...)
	}
	// The consumer's subscription may not have reached the server yet
	// (what is published before it is dropped): probe until one answers.
	for got.Load() == 0 {
		nc.Publish(prefix+".in", body(-1))
		nc.Flush()
		select {
		case <-arrived:
		case <-time.After(100 * time.Millisecond):
		}
	}
	time.Sleep(100 * time.Millisecond) // late answers to the probes
	base := got.Load()
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		if err := nc.Publish(prefix+".in", body(i)); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			nc.Flush()
		}
	}
	nc.Flush()
	limit := time.After(60 * time.Second)
	for got.Load()-base < int64(b.N) {
		select {
		case <-arrived:
		case <-limit:
			b.Fatalf("%d of %d messages came back (the server dropped the rest: use -benchtime 20000x)", got.Load()-base, b.N)
		}
	}
	b.StopTimer()
	// The process's CPU (consumer, publisher and server client alike)
	// moves less with the machine's load than the wall clock does.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchPrefix() string {
	var id [4]byte
	rand.Read(id[:])
	return "natsbench." + hex.EncodeToString(id[:])
}

// natsRuntime is a loaded runtime serving one flow (its YAML after the
// name line) with a connection "bus" to the machine's NATS server; its
// triggers are not started yet (startNATS).
func natsRuntime(tb testing.TB, flowYAML string) *Runtime {
	return brokerRuntime(tb, flowYAML, map[string]string{"policyproject/Bench/bus.yaml": "type: nats\nurl: " + benchNATSURL() + "\n"})
}

// brokerRuntime is a loaded runtime serving one flow with the given
// configuration files (paths under the configuration directory).
func brokerRuntime(tb testing.TB, flowYAML string, confFiles map[string]string) *Runtime {
	tb.Helper()
	proj := filepath.Join(tb.TempDir(), "proj")
	conf := filepath.Join(tb.TempDir(), "conf")
	files := map[string]string{
		filepath.Join(proj, "sluice.yaml"):         "name: natsbench\n",
		filepath.Join(proj, "flows", "price.yaml"): "flow: price\n" + flowYAML,
	}
	for name, data := range confFiles {
		files[filepath.Join(conf, filepath.FromSlash(name))] = data
	}
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return loadedRuntimeWith(tb, Options{ConfigDir: conf}, proj)
}

// startNATS starts rt's triggers, drained at the end of the test.
func startNATS(tb testing.TB, rt *Runtime) {
	tb.Helper()
	if err := rt.startTriggers(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		rt.hub.drain(context.Background())
		rt.hub.close()
	})
}

// BenchmarkNATSTrigger is bench/msgbench's flow in process against the
// machine's NATS server: a core NATS trigger, a map step, a publish.
// Compare with BenchmarkNATSHandWritten.
func BenchmarkNATSTrigger(b *testing.B) {
	prefix := benchPrefix()
	rt := natsRuntime(b, "trigger:\n  nats: {connection: bus, subject: "+prefix+".in, maxInFlight: 64}\n"+
		"steps:\n  - map: '{id: .body.id, total: (.body.qty * .body.price), t: .body.t}'\n  - publish: {connection: bus, subject: "+prefix+".out}\n")
	startNATS(b, rt)
	nc, err := nats.Connect(benchNATSURL())
	if err != nil {
		b.Skip("no NATS server:", err)
	}
	defer nc.Close()
	natsBenchRun(b, nc, prefix)
}

// benchOrder and benchPriced are the hand-written consumers' typed
// messages, as bench/msgbench's.
type benchOrder struct {
	ID    int     `json:"id"`
	Qty   int     `json:"qty"`
	Price float64 `json:"price"`
	T     int64   `json:"t"`
}

type benchPriced struct {
	ID    int     `json:"id"`
	Total float64 `json:"total"`
	T     int64   `json:"t"`
}

// BenchmarkNATSHandWritten is bench/msgbench's baseline in process: one
// subscription, encoding/json into typed structs, the same transform.
func BenchmarkNATSHandWritten(b *testing.B) {
	prefix := benchPrefix()
	cons, err := nats.Connect(benchNATSURL())
	if err != nil {
		b.Skip("no NATS server:", err)
	}
	defer cons.Close()
	sub, err := cons.Subscribe(prefix+".in", func(m *nats.Msg) {
		var o benchOrder
		if json.Unmarshal(m.Data, &o) != nil {
			return
		}
		out, _ := json.Marshal(benchPriced{ID: o.ID, Total: float64(o.Qty) * o.Price, T: o.T})
		cons.Publish(prefix+".out", out)
	})
	if err != nil {
		b.Fatal(err)
	}
	sub.SetPendingLimits(64*1024, 64<<20)
	cons.Flush()
	nc, err := nats.Connect(benchNATSURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	natsBenchRun(b, nc, prefix)
}
