// Command msgbench measures a message flow through `sluice runtime` —
// a core NATS trigger, one map step, a publish to NATS — next to a
// hand-written consumer doing the same transform with the same client
// library (nats.go, encoding/json and typed structs), both against the
// machine's NATS server in the same run: messages per second, CPU per
// message and end-to-end latency p99, and the ratios.
//
//	go build -o /tmp/sluice ./cmd/sluice && go run ./bench/msgbench -sluice /tmp/sluice
//
// Both consumers run at once, pinned to one CPU (taskset, when there);
// rounds alternate between them. It sends traffic only to the loopback
// NATS server and stops by itself.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// order and priced are the baseline's typed messages.
type order struct {
	ID    int     `json:"id"`
	Qty   int     `json:"qty"`
	Price float64 `json:"price"`
	T     int64   `json:"t"` // µs since the driver started, carried through
}

type priced struct {
	ID    int     `json:"id"`
	Total float64 `json:"total"`
	T     int64   `json:"t"`
}

const mapStep = `{id: .body.id, total: (.body.qty * .body.price), t: .body.t}`

func main() {
	natsURL := flag.String("nats", "nats://127.0.0.1:4222", "NATS server")
	sluice := flag.String("sluice", "", "the sluice binary (driver mode)")
	consume := flag.String("consume", "", "baseline mode: consume this subject (queue) prefix")
	broker := flag.String("broker", "nats", "nats, or amqp (RabbitMQ at -amqp)")
	amqpURL := flag.String("amqp", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ, for -broker amqp")
	n := flag.Int("n", 20000, "messages per throughput round")
	rounds := flag.Int("rounds", 3, "rounds per consumer")
	cpu := flag.String("cpu", "0", "CPU the consumers are pinned to (\"\": not pinned)")
	flag.Parse()
	if *consume != "" {
		if *broker == "amqp" {
			baselineAMQP(*amqpURL, *consume)
		} else {
			baseline(*natsURL, *consume)
		}
		return
	}
	if *broker == "amqp" {
		if *sluice == "" {
			fmt.Fprintln(os.Stderr, "msgbench: -sluice BINARY is required")
			os.Exit(2)
		}
		if err := driveAMQP(*amqpURL, *sluice, *cpu, *n, *rounds); err != nil {
			fmt.Fprintln(os.Stderr, "msgbench:", err)
			os.Exit(1)
		}
		return
	}
	if *sluice == "" {
		fmt.Fprintln(os.Stderr, "msgbench: -sluice BINARY is required")
		os.Exit(2)
	}
	if err := drive(*natsURL, *sluice, *cpu, *n, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "msgbench:", err)
		os.Exit(1)
	}
}

// baseline is the hand-written consumer: one subscription, decode,
// transform, encode, publish.
func baseline(url, prefix string) {
	nc, err := nats.Connect(url)
	check(err)
	sub, err := nc.Subscribe(prefix+".in", func(m *nats.Msg) {
		var o order
		if json.Unmarshal(m.Data, &o) != nil {
			return
		}
		out, _ := json.Marshal(priced{ID: o.ID, Total: float64(o.Qty) * o.Price, T: o.T})
		nc.Publish(prefix+".out", out)
	})
	check(err)
	sub.SetPendingLimits(64*1024, 64<<20)
	check(nc.Flush())
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	nc.Drain()
}

type target struct {
	name, prefix string
	cmd          *exec.Cmd
}

type round struct {
	rate, cpuUs float64 // messages/s, CPU µs per message
	lost        int
}

func drive(url, sluice, cpu string, n, rounds int) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return fmt.Errorf("NATS at %s: %w", url, err)
	}
	defer nc.Close()
	tmp, err := os.MkdirTemp("", "msgbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	id := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	rtPrefix, basePrefix := "msgbench."+id+".rt", "msgbench."+id+".base"

	proj := filepath.Join(tmp, "proj")
	write(filepath.Join(proj, "sluice.yaml"), "name: msgbench\n")
	write(filepath.Join(proj, "flows", "price.yaml"), fmt.Sprintf(`flow: price
trigger:
  nats: {connection: bus, subject: %s.in, maxInFlight: 64}
steps:
  - map: '%s'
  - publish: {connection: bus, subject: %s.out}
`, rtPrefix, mapStep, rtPrefix))
	barFile := filepath.Join(tmp, "msgbench.bar")
	if out, err := exec.Command(sluice, "bar", "build", proj, "-o", barFile).CombinedOutput(); err != nil {
		return fmt.Errorf("bar build: %v\n%s", err, out)
	}
	conf := filepath.Join(tmp, "conf")
	write(filepath.Join(conf, "serverconf", "bench.yaml"), "log:\n  level: warn\n")
	write(filepath.Join(conf, "policyproject", "Bench", "bus.yaml"), "type: nats\nurl: "+url+"\n")

	self, err := os.Executable()
	if err != nil {
		return err
	}
	rt := &target{name: "runtime", prefix: rtPrefix, cmd: pinned(cpu, sluice, "runtime", "--bar", barFile, "--config-dir", conf, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")}
	base := &target{name: "baseline", prefix: basePrefix, cmd: pinned(cpu, self, "-nats", url, "-consume", basePrefix)}
	for _, t := range []*target{rt, base} {
		t.cmd.Stderr = os.Stderr
		if err := t.cmd.Start(); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		defer func() { t.cmd.Process.Signal(syscall.SIGTERM); t.cmd.Wait() }()
	}
	start := time.Now()
	// Both are ready once a message comes back through them.
	// (Core NATS drops what is published before the subscription: probe.)
	for _, t := range []*target{rt, base} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, err := measure(nc, t, start, 1, 0, 250*time.Millisecond)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s never answered: %w", t.name, err)
			}
		}
	}
	fmt.Printf("# Sluice message benchmark: core NATS trigger → map → NATS publish, %s\n", time.Now().UTC().Format(time.RFC3339))
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("# %d messages per round, %d rounds each, consumers pinned to CPU %q; load average %s", n, rounds, cpu, load)
	results := map[string][]round{}
	for r := range rounds + 1 { // round 0 warms up
		for _, t := range []*target{rt, base} {
			res, err := measure(nc, t, start, n, 0, 60*time.Second)
			if err != nil {
				return err
			}
			if r > 0 {
				results[t.name] = append(results[t.name], res.round)
				fmt.Printf("round %d %-8s %8.0f msg/s  %6.1f µs CPU/msg  lost %d\n", r, t.name, res.round.rate, res.round.cpuUs, res.round.lost)
			}
		}
	}
	// Latency: a paced 2,000 messages/s for 2 s, p99 from send to receipt.
	p99 := map[string]time.Duration{}
	for _, t := range []*target{rt, base} {
		res, err := measure(nc, t, start, 4000, 2000, 60*time.Second)
		if err != nil {
			return err
		}
		p99[t.name] = res.p99
	}
	report(results, p99, "2,000 msg/s")
	return nil
}

// report prints each side's median throughput and CPU per message over
// the rounds, its p99 at the paced rate, and the two ratios.
func report(results map[string][]round, p99 map[string]time.Duration, paced string) {
	med := func(name string, f func(round) float64) float64 {
		var v []float64
		for _, r := range results[name] {
			v = append(v, f(r))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rate := func(r round) float64 { return r.rate }
	cpuUs := func(r round) float64 { return r.cpuUs }
	for _, name := range []string{"runtime", "baseline"} {
		fmt.Printf("%-8s median %8.0f msg/s  median CPU %6.1f µs/msg  p99 at %s %s\n", name, med(name, rate), med(name, cpuUs), paced, p99[name].Round(10*time.Microsecond))
	}
	fmt.Printf("throughput ratio runtime/baseline: %.2f (target >= 0.5)\n", med("runtime", rate)/med("baseline", rate))
	fmt.Printf("CPU-per-message ratio baseline/runtime: %.2f\n", med("baseline", cpuUs)/med("runtime", cpuUs))
}

type measured struct {
	round
	p99 time.Duration
}

// measure sends count messages through t (paced at rate per second, 0:
// as fast as the connection takes them) and waits for the outputs.
func measure(nc *nats.Conn, t *target, start time.Time, count, rate int, limit time.Duration) (measured, error) {
	var mu sync.Mutex
	var lat []time.Duration
	got := 0
	done := make(chan struct{})
	var last time.Time
	sub, err := nc.Subscribe(t.prefix+".out", func(m *nats.Msg) {
		var p priced
		json.Unmarshal(m.Data, &p)
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		lat = append(lat, now.Sub(start)-time.Duration(p.T)*time.Microsecond)
		got++
		last = now
		if got == count {
			close(done)
		}
	})
	if err != nil {
		return measured{}, err
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)
	nc.Flush()
	cpu0 := cpuTime(t.cmd.Process.Pid)
	first := time.Now()
	for i := range count {
		if rate > 0 {
			time.Sleep(time.Until(first.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		}
		body := fmt.Appendf(nil, `{"id":%d,"qty":%d,"price":%.2f,"t":%d}`, i, 1+i%7, 9.99, time.Since(start).Microseconds())
		if err := nc.Publish(t.prefix+".in", body); err != nil {
			return measured{}, err
		}
		if i%1000 == 999 {
			nc.Flush()
		}
	}
	nc.Flush()
	timeout := time.After(limit)
	select {
	case <-done:
	case <-timeout:
		// Core NATS drops what a slow consumer cannot hold: count it.
	}
	time.Sleep(20 * time.Millisecond)
	cpu1 := cpuTime(t.cmd.Process.Pid)
	mu.Lock()
	defer mu.Unlock()
	if got == 0 {
		return measured{}, fmt.Errorf("%s: nothing came back", t.name)
	}
	var m measured
	m.rate = float64(got) / last.Sub(first).Seconds()
	m.cpuUs = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(got)
	m.lost = count - got
	slices.Sort(lat)
	m.p99 = lat[int(math.Ceil(0.99*float64(len(lat))))-1]
	return m, nil
}

// cpuTime is a process's user+system CPU time (/proc/<pid>/stat).
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func pinned(cpu, bin string, args ...string) *exec.Cmd {
	if cpu != "" {
		if ts, err := exec.LookPath("taskset"); err == nil {
			return exec.Command(ts, append([]string{"-c", cpu, bin}, args...)...)
		}
	}
	return exec.Command(bin, args...)
}

func write(path, data string) {
	check(os.MkdirAll(filepath.Dir(path), 0o755))
	check(os.WriteFile(path, []byte(data), 0o644))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "msgbench:", err)
		os.Exit(1)
	}
}
