// Command benchctl drives Sluice's runtime benchmark (bench/run.sh calls
// it): throughput and p99 of HTTP → map → reply through `sluice runtime`
// next to the hand-written baseline server and, with -benthos, a peer
// (Benthos, bench/peers/benthos) in the same run, the same for the heavy
// scenario (a 20 KB order through validate and for-each; runtime and
// baseline), time from process start to ready for the orders BAR, and
// idle RSS. It starts the
// servers pinned to one core and the load generator (wrk, or a Go
// generator when wrk is missing) to another, so they do not compete.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/bench/benchutil"
)

type config struct {
	sluice, baseline, benchBAR, ordersBAR, luaScript string
	benthos, benthosConfig                           string
	heavyLua, heavyBody                              string // the heavy scenario's wrk script and request
	reqBody                                          string // the request of the scenario being measured
	duration, warmup                                 time.Duration
	rounds, conns, startups                          int
	serverCPU, loadCPU                               string
	out                                              string
}

func main() {
	var c config
	flag.StringVar(&c.sluice, "sluice", "", "sluice binary")
	flag.StringVar(&c.baseline, "baseline", "", "baseline server binary")
	flag.StringVar(&c.benchBAR, "bench-bar", "", "BAR of bench/project")
	flag.StringVar(&c.ordersBAR, "orders-bar", "", "BAR of examples/orders")
	flag.StringVar(&c.benthos, "benthos", "", "Benthos binary built from bench/peers/benthos; empty: no peer")
	flag.StringVar(&c.benthosConfig, "benthos-config", "bench/peers/benthos/config.yaml", "the peer's configuration")
	flag.StringVar(&c.luaScript, "lua", "bench/post.lua", "wrk script with the request")
	flag.StringVar(&c.heavyLua, "heavy-lua", "bench/post-heavy.lua", "wrk script of the heavy scenario; empty: skip it")
	flag.StringVar(&c.heavyBody, "heavy-body", "bench/heavy.json", "the heavy scenario's request (the file the script sends)")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "length of one measured load round")
	flag.DurationVar(&c.warmup, "warmup", 3*time.Second, "unmeasured load before the rounds")
	flag.IntVar(&c.rounds, "rounds", 3, "measured rounds per server (alternating)")
	flag.IntVar(&c.conns, "conns", 32, "concurrent connections")
	flag.IntVar(&c.startups, "startups", 20, "process starts measured for time-to-ready")
	flag.StringVar(&c.serverCPU, "server-cpu", "0", "CPU list for the servers (taskset -c); empty: no pinning")
	flag.StringVar(&c.loadCPU, "load-cpu", "1", "CPU list for the load generator; empty: no pinning")
	flag.StringVar(&c.out, "o", "", "also write the report to this file")
	flag.Parse()
	if c.sluice == "" || c.baseline == "" || c.benchBAR == "" || c.ordersBAR == "" {
		fmt.Fprintln(os.Stderr, "benchctl: -sluice, -baseline, -bench-bar and -orders-bar are required (use bench/run.sh)")
		os.Exit(2)
	}
	c.reqBody = body
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "benchctl:", err)
		os.Exit(1)
	}
}

// body is the request every server answers; it matches bench/post.lua.
const body = `{"items":[{"sku":"ABC-001","qty":2,"price":9.99},{"sku":"XYZ-042","qty":1,"price":5},{"sku":"LMN-777","qty":3,"price":1.25}]}`

func run(c config) error {
	var report bytes.Buffer
	w := io.MultiWriter(os.Stdout, &report)
	tmp, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	fmt.Fprintf(w, "# Sluice runtime benchmark, %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s; servers on CPU %q, load on CPU %q\n",
		cpuCount(), cpuModel(), runtime.Version(), c.serverCPU, c.loadCPU)
	// Other work on the machine moves every figure: say how much there was.
	loadavg, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "load average at the start: %s", loadavg)

	// 1. Time from process start to ready, and idle RSS, for the orders BAR.
	cfg := filepath.Join(tmp, "orders-config")
	if err := ordersConfig(cfg); err != nil {
		return err
	}
	var starts []time.Duration
	var idleRSS int64
	for i := range c.startups {
		d, rss, err := startup(c, cfg, i == 0)
		if err != nil {
			return fmt.Errorf("startup %d: %w", i, err)
		}
		starts = append(starts, d)
		if i == 0 {
			idleRSS = rss
		}
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	fmt.Fprintf(w, "\n## start to ready (orders BAR, %d starts, target < 200 ms)\n", len(starts))
	fmt.Fprintf(w, "median %s  p90 %s  min %s  max %s\n", ms(starts[len(starts)/2]), ms(starts[len(starts)*9/10]), ms(starts[0]), ms(starts[len(starts)-1]))
	fmt.Fprintf(w, "\n## idle RSS (orders BAR, 2 s after ready, target <= 30 MB)\n%.1f MB\n", float64(idleRSS)/(1<<20))

	// 2. Throughput and p99, runtime and baseline in the same run.
	rtPort, basePort, adminPort := freePort(), freePort(), freePort()
	rtCfg := filepath.Join(tmp, "bench-config")
	if err := writeFiles(rtCfg, map[string]string{"serverconf/bench.yaml": "log:\n  level: warn\n"}); err != nil {
		return err
	}
	rtProc, err := startPinned(c.serverCPU, c.sluice, "runtime", "--bar", c.benchBAR, "--config-dir", rtCfg,
		"--listen", "127.0.0.1:"+rtPort, "--admin-listen", "127.0.0.1:"+adminPort)
	if err != nil {
		return err
	}
	defer stopProc(rtProc)
	baseProc, err := startPinned(c.serverCPU, c.baseline, "--listen", "127.0.0.1:"+basePort)
	if err != nil {
		return err
	}
	defer stopProc(baseProc)
	if err := waitReady("http://127.0.0.1:"+adminPort+"/readyz", 30*time.Second); err != nil {
		return err
	}
	targets := []target{
		{"runtime", "http://127.0.0.1:" + rtPort + "/transform/acme", rtProc.Process.Pid},
		{"baseline", "http://127.0.0.1:" + basePort + "/transform/acme", baseProc.Process.Pid},
	}
	if err := waitReady(targets[1].url, 30*time.Second); err != nil {
		return err
	}
	if c.benthos != "" {
		peer, stop, err := startBenthos(c)
		if err != nil {
			return err
		}
		defer stop()
		targets = append(targets, peer)
	}
	gen := "wrk"
	if _, err := exec.LookPath("wrk"); err != nil {
		gen = "go"
	}
	if err := measure(c, w, gen, "HTTP → map → reply", targets); err != nil {
		return err
	}
	if c.heavyLua != "" {
		// The heavy scenario: the lines flow of bench/project (validate,
		// for-each) on a ~20 KB order, same servers, same method.
		data, err := os.ReadFile(c.heavyBody)
		if err != nil {
			return err
		}
		hc := c
		hc.luaScript, hc.reqBody = c.heavyLua, string(data)
		var heavy []target
		for _, t := range targets {
			if t.name != "benthos" { // the peer's configuration has the light transform only
				heavy = append(heavy, target{t.name, strings.Replace(t.url, "/transform/", "/lines/", 1), t.pid})
			}
		}
		if err := measure(hc, w, gen, "heavy: 20 KB order → validate → for-each → reply", heavy); err != nil {
			return err
		}
	}
	if rss, err := vmRSS(rtProc.Process.Pid); err == nil {
		fmt.Fprintf(w, "runtime RSS after the load: %.1f MB\n", float64(rss)/(1<<20))
	}
	loadavg, _ = os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "load average at the end: %s", loadavg)
	if c.out != "" {
		if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(c.out, report.Bytes(), 0o644)
	}
	return nil
}

// measure checks that the targets give the same answer to c.reqBody, then
// loads them in alternating rounds and reports each round, the medians,
// their spread and the ratios to the baseline.
func measure(c config, w io.Writer, gen, heading string, targets []target) error {
	if err := sameAnswer(targets, c.reqBody); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n## %s (%d connections, %s rounds × %d, load generator %s)\n", heading, c.conns, c.duration, c.rounds, gen)
	for _, t := range targets {
		if _, err := load(c, gen, t.url, c.warmup); err != nil {
			return fmt.Errorf("warm-up of %s: %w", t.name, err)
		}
	}
	results := map[string][]loadResult{}
	for r := range c.rounds {
		for _, t := range targets {
			cpu0, _ := benchutil.CPUTime(t.pid)
			res, err := load(c, gen, t.url, c.duration)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", t.name, r, err)
			}
			if cpu1, err := benchutil.CPUTime(t.pid); err == nil && res.requests > 0 {
				res.cpuPerReq = (cpu1 - cpu0) / time.Duration(res.requests)
			}
			results[t.name] = append(results[t.name], res)
			fmt.Fprintf(w, "round %d %-8s %9.0f req/s  p50 %s  p99 %s  CPU %5.1f µs/req  errors %d\n",
				r+1, t.name, res.rps, ms(res.p50), ms(res.p99), us(res.cpuPerReq), res.errors)
		}
	}
	fmt.Fprintln(w)
	sums := map[string]summary{}
	for _, t := range targets {
		s := summarise(results[t.name])
		sums[t.name] = s
		fmt.Fprintf(w, "%-8s median %9.0f req/s (spread %4.1f%%)  median p99 %s  median CPU %5.1f µs/req\n", t.name, s.rps, s.spread*100, ms(s.p99), us(s.cpu))
	}
	base := sums["baseline"]
	for _, t := range targets {
		if t.name == "baseline" {
			continue
		}
		s := sums[t.name]
		target := ""
		if t.name == "runtime" {
			target = " (target >= 0.8)"
		}
		fmt.Fprintf(w, "throughput ratio %s/baseline: %.2f%s\n", t.name, s.rps/base.rps, target)
		if s.cpu > 0 {
			// Other load on the machine moves req/s a lot and CPU per
			// request little: this ratio is the steadier of the two.
			fmt.Fprintf(w, "CPU-per-request ratio baseline/%s: %.2f\n", t.name, float64(base.cpu)/float64(s.cpu))
		}
	}
	return nil
}

// target is one server under load: its name in the report, the URL of
// the transform and the process whose CPU time is counted.
type target struct {
	name, url string
	pid       int
}

// startBenthos starts the peer pinned like the other servers, on free
// ports set over its configuration's, and waits for its /ready.
func startBenthos(c config) (target, func(), error) {
	port, admin := freePort(), freePort()
	proc, err := startPinned(c.serverCPU, c.benthos, "run",
		"--set", "http.address=127.0.0.1:"+admin, "--set", "input.http_server.address=127.0.0.1:"+port, c.benthosConfig)
	if err != nil {
		return target{}, nil, err
	}
	stop := func() { stopProc(proc) }
	t := target{"benthos", "http://127.0.0.1:" + port + "/transform/acme", proc.Process.Pid}
	if err := waitReady("http://127.0.0.1:"+admin+"/ready", 30*time.Second); err != nil {
		stop()
		return target{}, nil, err
	}
	return t, stop, nil
}

type loadResult struct {
	rps       float64
	requests  int
	p50, p99  time.Duration
	cpuPerReq time.Duration // server CPU (user+system) per request
	errors    int
}

type summary struct {
	rps    float64 // median
	spread float64 // (max-min)/median of the rounds: the run's noise
	p99    time.Duration
	cpu    time.Duration // median CPU per request
}

func summarise(rs []loadResult) summary {
	rps := make([]float64, len(rs))
	p99 := make([]time.Duration, len(rs))
	cpu := make([]time.Duration, len(rs))
	for i, r := range rs {
		rps[i], p99[i], cpu[i] = r.rps, r.p99, r.cpuPerReq
	}
	sort.Slice(cpu, func(i, j int) bool { return cpu[i] < cpu[j] })
	sort.Float64s(rps)
	sort.Slice(p99, func(i, j int) bool { return p99[i] < p99[j] })
	med := rps[len(rps)/2]
	mp99 := p99[len(p99)/2]
	if n := len(rps); n%2 == 0 {
		med = (rps[n/2-1] + rps[n/2]) / 2
		mp99 = (p99[n/2-1] + p99[n/2]) / 2
	}
	return summary{rps: med, spread: (rps[len(rps)-1] - rps[0]) / med, p99: mp99, cpu: cpu[len(cpu)/2]}
}

func ms(d time.Duration) string  { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// cpuCount counts the machine's CPUs; runtime.NumCPU would count only
// those benchctl is pinned to.
func cpuCount() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	return bytes.Count(data, []byte("\nprocessor")) + 1
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func writeFiles(dir string, files map[string]string) error {
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ordersConfig is the configuration examples/orders needs to load: its
// backend URLs and the two credentials it references.
func ordersConfig(dir string) error {
	return writeFiles(dir, map[string]string{
		"serverconf/server.yaml": "log:\n  level: warn\nvalues:\n  backendURL: http://127.0.0.1:9\n  pricingURL: http://127.0.0.1:9\n",
		"setdbparms/backend.txt": "backend sluice bench-password\nbackend-token token bench-token\n",
	})
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func startPinned(cpus, bin string, args ...string) (*exec.Cmd, error) {
	if cpus != "" {
		args = append([]string{"-c", cpus, bin}, args...)
		bin = "taskset"
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return cmd, nil
}

func stopProc(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// startup starts the runtime on the orders BAR and measures the time from
// starting the process to the first 200 from /readyz (polled every
// millisecond; the poll itself adds well under a millisecond).
func startup(c config, cfg string, measureRSS bool) (time.Duration, int64, error) {
	listen, admin := freePort(), freePort()
	readyz := "http://127.0.0.1:" + admin + "/readyz"
	cl := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	begin := time.Now()
	cmd, err := startPinned(c.serverCPU, c.sluice, "runtime", "--bar", c.ordersBAR, "--config-dir", cfg,
		"--listen", "127.0.0.1:"+listen, "--admin-listen", "127.0.0.1:"+admin)
	if err != nil {
		return 0, 0, err
	}
	defer stopProc(cmd)
	for {
		if time.Since(begin) > 30*time.Second {
			return 0, 0, errors.New("not ready within 30s")
		}
		resp, err := cl.Get(readyz)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(begin)
	var rss int64
	if measureRSS {
		time.Sleep(2 * time.Second)
		if rss, err = vmRSS(cmd.Process.Pid); err != nil {
			return 0, 0, err
		}
	}
	return elapsed, rss, nil
}

// vmRSS reads the resident set of pid, or of its only child when pid is
// taskset's (taskset execs, so normally pid is the server itself).
func vmRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(data)
	if m == nil {
		return 0, errors.New("no VmRSS")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10, nil
}

func waitReady(url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		var resp *http.Response
		var err error
		if strings.Contains(url, "/transform/") {
			resp, err = http.Post(url, "application/json", strings.NewReader(body))
		} else {
			resp, err = http.Get(url)
		}
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s", url, limit)
}

// sameAnswer makes sure the comparison is fair: every server computes the
// same JSON for the benchmark's request as the baseline (the answers are
// compared decoded, so the order of their keys does not matter).
func sameAnswer(targets []target, body string) error {
	answers := map[string][]byte{}
	for _, t := range targets {
		resp, err := http.Post(t.url, "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		var v any
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", t.url, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s", t.url, resp.Status)
		}
		answers[t.name], _ = json.Marshal(v)
	}
	for _, t := range targets {
		if !bytes.Equal(answers[t.name], answers["baseline"]) {
			return fmt.Errorf("the servers disagree:\n%-8s %s\nbaseline %s", t.name, answers[t.name], answers["baseline"])
		}
	}
	return nil
}

func load(c config, gen, url string, d time.Duration) (loadResult, error) {
	if gen == "wrk" {
		return wrk(c, url, d)
	}
	return goLoad(c.conns, url, c.reqBody, d)
}

var (
	reqsRE  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	totalRE = regexp.MustCompile(`(\d+) requests in`)
	p50RE   = regexp.MustCompile(`\s50%\s+([\d.]+)(us|ms|s)`)
	p99RE   = regexp.MustCompile(`\s99%\s+([\d.]+)(us|ms|s)`)
	errsRE  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	sockRE  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func wrk(c config, url string, d time.Duration) (loadResult, error) {
	args := []string{"-t1", "-c" + strconv.Itoa(c.conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", "-s", c.luaScript, url}
	bin := "wrk"
	if c.loadCPU != "" {
		args = append([]string{"-c", c.loadCPU, "wrk"}, args...)
		bin = "taskset"
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	var r loadResult
	m := reqsRE.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("cannot read wrk's output:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := totalRE.FindSubmatch(out); m != nil {
		r.requests, _ = strconv.Atoi(string(m[1]))
	}
	r.p50 = wrkDuration(p50RE.FindSubmatch(out))
	r.p99 = wrkDuration(p99RE.FindSubmatch(out))
	if m := errsRE.FindSubmatch(out); m != nil {
		r.errors, _ = strconv.Atoi(string(m[1]))
	}
	if m := sockRE.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.Atoi(string(g))
			r.errors += n
		}
	}
	return r, nil
}

func wrkDuration(m [][]byte) time.Duration {
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	switch string(m[2]) {
	case "us":
		return time.Duration(v * float64(time.Microsecond))
	case "ms":
		return time.Duration(v * float64(time.Millisecond))
	}
	return time.Duration(v * float64(time.Second))
}

// goLoad is the fallback load generator: conns keep-alive connections,
// each sending the request in a loop. It runs in this process, so pin
// benchctl itself (bench/run.sh does) when using it.
func goLoad(conns int, url, body string, d time.Duration) (loadResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	begin := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for ctx.Err() == nil {
				t := time.Now()
				resp, err := cl.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					if ctx.Err() == nil {
						bad++
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					bad++
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if len(lat) == 0 {
		return loadResult{}, errors.New("no request succeeded")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return loadResult{rps: float64(len(lat)) / elapsed.Seconds(), requests: len(lat), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], errors: errs}, nil
}
