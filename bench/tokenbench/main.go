// Command tokenbench measures Sluice's token service against bare net/http
// baselines, in one run, on the same machine:
//
//   - POST /api/v1/tokens (the App Connect exchange, audit write included)
//     next to a bare handler that signs the same JWT (EdDSA via go-jose,
//     the same claims and header) and answers the same JSON;
//   - GET /api/v1/whoami (bearer authentication, grant-state read) and
//     GET /api/v1/integration-runtimes (a list of 10) next to a bare
//     "hello" handler.
//
// The servers (a real `sluice serve` built from this checkout, and the
// baseline) are pinned to one CPU with taskset, the load generator (wrk,
// or a Go one when wrk is missing) to another, so "per second" means "per
// core". With -profile it also takes a CPU profile of `sluice serve`
// under the token load and prints where the time goes.
//
// Usage: go run ./bench/tokenbench [-postgres URL] [-runs 3] [-duration 10s]
// (see bench/README.md).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-dev/sluice/bench/benchutil"
	"github.com/sluice-dev/sluice/client"
	"github.com/sluice-dev/sluice/internal/cli"
)

// targetTokensPerSecond is the goal of issue 3 for one core, audit write
// included.
const targetTokensPerSecond = 5000

type options struct {
	duration, warmup time.Duration
	runs, conns      int
	postgres         string
	loadgen          string
	serverCPU        string
	loadCPU          string
	rateLimit        string
	profile          string
	profileLoad      string
	out              string
	pgDB             string    // the fresh database's name, whose backends' CPU is read
	pgStats          *pgx.Conn // to the -postgres URL's database: reads pg_stat_database
	sluice           string    // a sluice binary to measure instead of building this checkout
}

func main() {
	// Child roles: the same executable serves the baseline, or runs
	// `sluice serve` in-process under a CPU profile.
	if len(os.Args) > 2 && os.Args[1] == "-bare" {
		if err := serveBare(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "tokenbench bare:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 2 && os.Args[1] == "-profile-serve" {
		os.Exit(profileServe(os.Args[2], os.Args[3:]))
	}

	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measurement")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before each measurement that is not counted")
	flag.IntVar(&o.runs, "runs", 3, "rounds of the four measurements, to show the noise")
	flag.IntVar(&o.conns, "conns", 32, "keep-alive connections of the load generator")
	flag.StringVar(&o.postgres, "postgres", "", "PostgreSQL URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run on a fresh database there instead of SQLite")
	flag.StringVar(&o.loadgen, "loadgen", "auto", "load generator: wrk, go, or auto (wrk when installed)")
	flag.StringVar(&o.serverCPU, "server-cpu", "0", "CPU list the servers are pinned to (taskset -c); empty: no pinning")
	flag.StringVar(&o.loadCPU, "load-cpu", "1", "CPU list the load generator is pinned to; empty: no pinning")
	flag.StringVar(&o.rateLimit, "rate-limit", "1000000000/1s", "sluice serve's --rate-limit-client and --rate-limit-instance: high enough never to refuse, so the limiter's cost is counted")
	flag.StringVar(&o.profile, "profile", "", "after the runs, CPU-profile sluice serve under the token load and write the profile to this file")
	flag.StringVar(&o.profileLoad, "profile-load", "tokens", "the load to profile under: tokens, whoami or runtimes")
	flag.StringVar(&o.out, "o", "", "also write the report to this file")
	flag.StringVar(&o.sluice, "sluice", "", "measure this sluice binary (e.g. one built from an earlier commit, for a before/after pair) instead of building the checkout; -profile still profiles the checkout's code")
	flag.Parse()

	// The whole harness moves to the load CPU first: it is the load
	// generator when wrk is missing, and otherwise only waits. The servers
	// it starts are pinned to the server CPU explicitly.
	if o.loadCPU != "" && os.Getenv("TOKENBENCH_PINNED") == "" {
		if _, err := exec.LookPath("taskset"); err != nil {
			fatal(errors.New("taskset is not installed (util-linux); give -server-cpu '' -load-cpu '' to run unpinned"))
		}
		exe, err := os.Executable()
		if err != nil {
			fatal(err)
		}
		cmd := exec.Command("taskset", append([]string{"-c", o.loadCPU, exe}, os.Args[1:]...)...)
		cmd.Env = append(os.Environ(), "TOKENBENCH_PINNED=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				os.Exit(ee.ExitCode())
			}
			fatal(err)
		}
		return
	}
	if err := run(o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "tokenbench:", err)
	os.Exit(1)
}

func run(o options) error {
	ctx := context.Background()
	if o.loadgen == "auto" {
		o.loadgen = "go"
		if _, err := exec.LookPath("wrk"); err == nil {
			o.loadgen = "wrk"
		} else {
			logf("wrk not found (apt-get install wrk); using the Go load generator, which is slower than wrk on one core")
		}
	}
	tmp, err := os.MkdirTemp("", "tokenbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	sluice := o.sluice
	if sluice == "" {
		logf("building sluice")
		sluice = filepath.Join(tmp, "sluice")
		if out, err := exec.Command("go", "build", "-o", sluice, "github.com/sluice-dev/sluice/cmd/sluice").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	store := ""
	if o.postgres != "" {
		dsn, drop, err := benchutil.FreshDatabase(ctx, o.postgres, "tokenbench", logf)
		if err != nil {
			return err
		}
		defer drop()
		store = dsn
		o.pgDB = pgDatabase(dsn)
		if o.pgStats, err = pgx.Connect(ctx, o.postgres); err != nil {
			return err
		}
		defer o.pgStats.Close(context.Background())
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	bareAddr := freeAddr()
	bare, err := startProcess(tmp, "bare", o.serverCPU, self, "-bare", bareAddr)
	if err != nil {
		return err
	}
	defer bare.stop()
	if err := waitLine(bare, "bare: serving"); err != nil {
		return err
	}

	serveArgs := []string{"serve", "--listen", freeAddr(), "--data-dir", filepath.Join(tmp, "data"),
		"--log-format", "json", "--rate-limit-client", o.rateLimit, "--rate-limit-instance", o.rateLimit}
	if store != "" {
		serveArgs = append(serveArgs, "--store", store)
	}
	srv, err := startProcess(tmp, "sluice", o.serverCPU, sluice, serveArgs...)
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := waitLine(srv, "sluice: serving"); err != nil {
		return err
	}
	creds, err := readCreds(filepath.Join(tmp, "data", "initial-credentials.json"))
	if err != nil {
		return err
	}
	token, err := bearer(ctx, creds)
	if err != nil {
		return err
	}
	if err := seedRuntimes(ctx, sluice, tmp, creds); err != nil {
		return err
	}

	storeName := "SQLite"
	if o.postgres != "" {
		storeName = "PostgreSQL"
	}
	targets := []target{
		tokenTarget("sluice POST /api/v1/tokens", creds.Endpoint+"/api/v1/tokens", creds),
		tokenTarget("bare   POST /token (EdDSA JWT)", "http://"+bareAddr+"/token", creds),
		getTarget("sluice GET /api/v1/whoami", creds.Endpoint+"/api/v1/whoami", map[string]string{"Authorization": "Bearer " + token, "X-IBM-Client-Id": creds.ClientID}),
		getTarget("bare   GET /hello", "http://"+bareAddr+"/hello", nil),
		getTarget(fmt.Sprintf("sluice GET /api/v1/integration-runtimes (%d)", listedRuntimes), creds.Endpoint+"/api/v1/integration-runtimes",
			map[string]string{"Authorization": "Bearer " + token, "X-IBM-Client-Id": creds.ClientID}),
	}
	for i := range targets {
		targets[i].pid, targets[i].sluice = srv.cmd.Process.Pid, true
		if strings.HasPrefix(targets[i].name, "bare") {
			targets[i].pid, targets[i].sluice = bare.cmd.Process.Pid, false
		}
	}
	logf("measuring: %d run(s) of %v after %v warm-up, %d connections, load generator %s, store %s", o.runs, o.duration, o.warmup, o.conns, o.loadgen, storeName)
	loadStart = loadAvg()
	results := make([][]result, len(targets))
	for r := 0; r < o.runs; r++ {
		for i, t := range targets {
			if _, err := measure(o, tmp, t, o.warmup); err != nil {
				return err
			}
			res, err := measure(o, tmp, t, o.duration)
			if err != nil {
				return err
			}
			logf("run %d  %-32s %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  %6.0f µs CPU/req  %d failed%s", r+1, t.name, res.rps, ms(res.p50), ms(res.p99), us(res.cpuPerReq), res.errors, res.pgNote())
			results[i] = append(results[i], res)
		}
	}

	var rep bytes.Buffer
	report(&rep, o, storeName, targets, results)
	if o.profile != "" {
		srv.stop()
		if err := profileTokens(o, tmp, self, serveArgs, creds, o.profile, &rep); err != nil {
			return err
		}
	}
	os.Stdout.Write(rep.Bytes())
	if o.out != "" {
		return os.WriteFile(o.out, rep.Bytes(), 0o644)
	}
	return nil
}

// report writes the figures: every run, then the median with the spread,
// and the ratios to the baselines run by run.
func report(w io.Writer, o options, storeName string, targets []target, results [][]result) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "\n## Token service benchmark — %s, %s\n\n", storeName, time.Now().UTC().Format("2006-01-02 15:04Z"))
	fmt.Fprintf(w, "host %s, %s; servers on CPU %q, load on CPU %q; %s, %d keep-alive connections, %v per run after %v warm-up, %d run(s)\n",
		host, runtime.Version(), o.serverCPU, o.loadCPU, o.loadgen, o.conns, o.duration, o.warmup, len(results[0]))
	// Other work on the machine skews every figure; the load average says
	// how much there was.
	fmt.Fprintf(w, "load average before the runs: %s; after: %s\n", loadStart, loadAvg())
	if o.sluice != "" {
		fmt.Fprintf(w, "sluice binary measured: %s\n", o.sluice)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | req/s median (min–max) | p50 ms median | p99 ms median (min–max) | server CPU µs/request median (min–max) | failed requests |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for i, t := range targets {
		rps, p99 := column(results[i], func(r result) float64 { return r.rps }), column(results[i], func(r result) float64 { return ms(r.p99) })
		p50 := column(results[i], func(r result) float64 { return ms(r.p50) })
		failed := 0
		for _, r := range results[i] {
			failed += r.errors
		}
		cpu := column(results[i], func(r result) float64 { return us(r.cpuPerReq) })
		fmt.Fprintf(w, "| %s | %.0f (%.0f–%.0f) | %.2f | %.2f (%.2f–%.2f) | %.0f (%.0f–%.0f) | %d |\n", strings.Join(strings.Fields(t.name), " "),
			median(rps), minOf(rps), maxOf(rps), median(p50), median(p99), minOf(p99), maxOf(p99), median(cpu), minOf(cpu), maxOf(cpu), failed)
	}
	if o.pgDB != "" {
		// PostgreSQL shares the machine, unpinned: what it spends per
		// request is apart from the server's CPU above.
		fmt.Fprintln(w, "\nPostgreSQL's CPU per request of the control plane's targets (same runs; its own processes also serve other databases on the server, so that column is an upper bound):")
		fmt.Fprintln(w, "\n| target | PostgreSQL backends µs/request median (min–max) | PostgreSQL's own processes µs/request median | server + PostgreSQL µs/request median | transactions/request median | new connections |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		for i, t := range targets {
			if !t.sluice {
				continue
			}
			be := column(results[i], func(r result) float64 { b, _ := r.pgPerReq(); return us(b) })
			aux := column(results[i], func(r result) float64 { _, a := r.pgPerReq(); return us(a) })
			all := column(results[i], func(r result) float64 { b, a := r.pgPerReq(); return us(b + a + r.cpuPerReq) })
			conns := 0
			for _, r := range results[i] {
				if r.pg != nil {
					conns += r.pg.connections
				}
			}
			xacts := column(results[i], result.xactsPerReq)
			fmt.Fprintf(w, "| %s | %.0f (%.0f–%.0f) | %.0f | %.0f | %.2f | %d |\n", strings.Join(strings.Fields(t.name), " "),
				median(be), minOf(be), maxOf(be), median(aux), median(all), median(xacts), conns)
		}
	}
	ratios := func(a, b int) []float64 {
		var rs []float64
		for r := range results[a] {
			rs = append(rs, results[a][r].rps/results[b][r].rps)
		}
		return rs
	}
	cpuRatios := func(a, b int) []float64 {
		var rs []float64
		for r := range results[a] {
			if results[a][r].cpuPerReq > 0 {
				rs = append(rs, float64(results[b][r].cpuPerReq)/float64(results[a][r].cpuPerReq))
			}
		}
		return rs
	}
	tok, get := ratios(0, 1), ratios(2, 3)
	fmt.Fprintf(w, "\nthroughput ratio, token exchange / bare JWT signing: %.2f (runs: %s)\n", median(tok), list(tok))
	fmt.Fprintf(w, "throughput ratio, whoami / bare hello:               %.2f (runs: %s)\n", median(get), list(get))
	if len(results) > 4 {
		lst, lcpu := ratios(4, 3), cpuRatios(4, 3)
		fmt.Fprintf(w, "runtime list / bare hello: throughput %.2f (runs: %s), CPU per request %.2f (runs: %s)\n", median(lst), list(lst), median(lcpu), list(lcpu))
	}
	if ct, cg := cpuRatios(0, 1), cpuRatios(2, 3); len(ct) > 0 && len(cg) > 0 {
		fmt.Fprintf(w, "CPU-per-request ratio (bare CPU / sluice CPU), tokens: %.2f (runs: %s); whoami: %.2f (runs: %s)\n", median(ct), list(ct), median(cg), list(cg))
		cpuTok := median(column(results[0], func(r result) float64 { return us(r.cpuPerReq) }))
		if cpuTok > 0 {
			fmt.Fprintf(w, "token exchanges one core could serve by CPU alone (1 s / CPU per exchange): %.0f/s\n", 1e6/cpuTok)
		}
	}
	tokRPS := median(column(results[0], func(r result) float64 { return r.rps }))
	verdict := "met"
	if tokRPS < targetTokensPerSecond {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, "target ≥ %d token exchanges/s on one core, audit write included: %s (%.0f/s)\n", targetTokensPerSecond, verdict, tokRPS)
}

// ---- targets and load generation ----

type target struct {
	pid     int  // the server process, for its CPU time
	sluice  bool // the control plane (not a bare baseline): its database's CPU is read too
	name    string
	url     string
	method  string
	headers map[string]string
	body    string
}

func tokenTarget(name, url string, c creds) target {
	body, _ := json.Marshal(map[string]string{"apiKey": c.APIKey})
	return target{name: name, url: url, method: "POST", body: string(body), headers: map[string]string{
		"Content-Type": "application/json", "X-IBM-Client-Id": c.ClientID,
		"X-IBM-Client-Secret": c.ClientSecret, "x-ibm-instance-id": c.InstanceID}}
}

func getTarget(name, url string, headers map[string]string) target {
	return target{name: name, url: url, method: "GET", headers: headers}
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int
	requests int
	// cpuPerReq is the server's CPU time (user + system) per request.
	// Other work on the machine moves it far less than it moves req/s, and
	// 1 s / cpuPerReq is what one core could serve if nothing waited.
	cpuPerReq time.Duration
	// pg is PostgreSQL's CPU over the measurement (with -postgres, for
	// the control plane's targets; see pgcpu.go).
	pg *pgCPU
}

// pgPerReq returns PostgreSQL's CPU per request: its backends serving
// the bench database, and its own processes (WAL writer, checkpointer…).
func (r result) pgPerReq() (backends, aux time.Duration) {
	if r.pg == nil || r.requests == 0 {
		return 0, 0
	}
	return r.pg.backends / time.Duration(r.requests), r.pg.aux / time.Duration(r.requests)
}

// xactsPerReq is the bench database's committed transactions per request
// (NaN: unknown).
func (r result) xactsPerReq() float64 {
	if r.pg == nil || r.pg.xacts < 0 || r.requests == 0 {
		return math.NaN()
	}
	return float64(r.pg.xacts) / float64(r.requests)
}

func (r result) pgNote() string {
	if r.pg == nil {
		return ""
	}
	b, a := r.pgPerReq()
	return fmt.Sprintf("  PostgreSQL %.0f+%.0f µs CPU/req, %.2f transactions/req, %d new connections", us(b), us(a), r.xactsPerReq(), r.pg.connections)
}

func measure(o options, tmp string, t target, d time.Duration) (result, error) {
	pgBefore := samplePostgres(o.pgStats, o.pgDB)
	before, cerr := cpuTime(t.pid)
	var r result
	var err error
	if o.loadgen == "wrk" {
		r, err = runWrk(o, tmp, t, d)
	} else {
		r, err = runGoLoad(t, o.conns, d)
	}
	after, cerr2 := cpuTime(t.pid)
	if err == nil && cerr == nil && cerr2 == nil && r.requests > 0 {
		r.cpuPerReq = (after - before) / time.Duration(r.requests)
	}
	if o.pgDB != "" && t.sluice {
		pg := samplePostgres(o.pgStats, o.pgDB).since(pgBefore)
		r.pg = &pg
	}
	return r, err
}

// cpuTime reads the user and system CPU time of a process from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it
	// start past the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	var utime, stime int64
	fmt.Sscanf(f[11], "%d", &utime)
	fmt.Sscanf(f[12], "%d", &stime)
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// runWrk runs wrk with a Lua script that sets the method, headers and
// body; the script holds credentials, so it is written 0600 in the
// temporary directory and removed with it.
func runWrk(o options, tmp string, t target, d time.Duration) (result, error) {
	var lua strings.Builder
	fmt.Fprintf(&lua, "wrk.method = %q\n", t.method)
	keys := make([]string, 0, len(t.headers))
	for k := range t.headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&lua, "wrk.headers[%q] = %q\n", k, t.headers[k])
	}
	if t.body != "" {
		fmt.Fprintf(&lua, "wrk.body = %q\n", t.body)
	}
	script := filepath.Join(tmp, "load.lua")
	if err := os.WriteFile(script, []byte(lua.String()), 0o600); err != nil {
		return result{}, err
	}
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	cmd := exec.Command("wrk", "-t1", fmt.Sprintf("-c%d", o.conns), fmt.Sprintf("-d%ds", secs), "--latency", "--timeout", "30s", "-s", script, t.url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	r, err := parseWrk(string(out))
	if err == nil && r.errors > 0 {
		logf("wrk reported failures:\n%s", out)
	}
	return r, err
}

// parseWrk reads Requests/sec, the 99% latency and the error counts of
// wrk's --latency output.
func parseWrk(out string) (result, error) {
	var r result
	var haveRPS, haveP99 bool
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			_, err := fmt.Sscanf(f[1], "%f", &r.rps)
			haveRPS = err == nil
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			fmt.Sscanf(f[0], "%d", &r.requests)
		case len(f) == 2 && f[0] == "50%":
			r.p50, _ = time.ParseDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			d, err := time.ParseDuration(f[1])
			r.p99, haveP99 = d, err == nil
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx or 3xx responses:"):
			var n int
			fmt.Sscanf(f[len(f)-1], "%d", &n)
			r.errors += n
		case strings.HasPrefix(strings.TrimSpace(line), "Socket errors:"):
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			for i := 2; i+1 < len(f); i += 2 {
				var n int
				fmt.Sscanf(strings.TrimSuffix(f[i+1], ","), "%d", &n)
				r.errors += n
			}
		}
	}
	if !haveRPS || !haveP99 {
		return r, fmt.Errorf("cannot read wrk's output:\n%s", out)
	}
	return r, nil
}

// ---- processes ----

type proc struct {
	cmd    *exec.Cmd
	lines  chan string
	done   chan struct{}
	stderr string
}

// startProcess runs exe pinned to cpu (when given), with stdout read line
// by line and stderr (the access log) kept in a file, as in production.
func startProcess(tmp, name, cpu, exe string, args ...string) (*proc, error) {
	if cpu != "" {
		args = append([]string{"-c", cpu, exe}, args...)
		exe = "taskset"
	}
	cmd := exec.Command(exe, args...)
	errPath := filepath.Join(tmp, name+".stderr")
	errFile, err := os.Create(errPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = errFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, lines: make(chan string, 64), done: make(chan struct{}), stderr: errPath}
	go func() {
		defer close(p.lines)
		buf := make([]byte, 64<<10)
		var pending string
		for {
			n, err := out.Read(buf)
			pending += string(buf[:n])
			for {
				line, rest, ok := strings.Cut(pending, "\n")
				if !ok {
					break
				}
				select {
				case p.lines <- line:
				default:
				}
				pending = rest
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		errFile.Close()
		close(p.done)
	}()
	return p, nil
}

func waitLine(p *proc, prefix string) error {
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				b, _ := os.ReadFile(p.stderr)
				return fmt.Errorf("%s exited before serving:\n%s", p.cmd.Path, tail(string(b)))
			}
			if strings.HasPrefix(line, prefix) {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("%s did not start within 60s", p.cmd.Path)
		}
	}
}

// stop ends the process with SIGTERM (taskset execs the program, so the
// signal reaches it) and waits for it.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ---- credentials ----

type creds struct {
	Endpoint     string `json:"endpoint"`
	InstanceID   string `json:"instanceId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	APIKey       string `json:"apiKey"`
}

func readCreds(path string) (creds, error) {
	var c creds
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

// bearer gets a token for the whoami load with the public Go client.
func bearer(ctx context.Context, c creds) (string, error) {
	cl, err := client.New(c.Endpoint, client.Options{Credentials: client.Credentials{InstanceID: c.InstanceID, ClientID: c.ClientID,
		ClientSecret: client.NewSecret(c.ClientSecret), APIKey: client.NewSecret(c.APIKey)}})
	if err != nil {
		return "", err
	}
	tok, err := cl.Token(ctx)
	if err != nil {
		return "", err
	}
	return tok.AccessToken.Reveal(), nil
}

// ---- profiling ----

// profileServe is the child role that runs `sluice serve` in this process
// (the same code as the binary) under a CPU profile, written to path at
// exit, and a block profile, written to path+".block": the server may wait
// more than it computes (store round trips, commits, locks), and only the
// block profile shows where.
func profileServe(path string, args []string) int {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	runtime.SetBlockProfileRate(int(10 * time.Microsecond))
	code := cli.Execute(args)
	pprof.StopCPUProfile()
	f.Close()
	if bf, err := os.Create(path + ".block"); err == nil {
		_ = pprof.Lookup("block").WriteTo(bf, 0)
		bf.Close()
	}
	return code
}

// profileTokens restarts the measured control plane (same store, data
// dir and address) in-process under a CPU profile, puts the token load on
// it for one measurement, and appends the top of the profile to the
// report.
func profileTokens(o options, tmp, self string, serveArgs []string, c creds, path string, rep io.Writer) error {
	logf("profiling sluice serve under the %s load", o.profileLoad)
	p, err := startProcess(tmp, "profile", o.serverCPU, self, append([]string{"-profile-serve", path}, serveArgs...)...)
	if err != nil {
		return err
	}
	defer p.stop()
	if err := waitLine(p, "sluice: serving"); err != nil {
		return err
	}
	t := tokenTarget("profiled POST /api/v1/tokens", c.Endpoint+"/api/v1/tokens", c)
	if o.profileLoad == "whoami" || o.profileLoad == "runtimes" {
		tok, err := bearer(context.Background(), c)
		if err != nil {
			return err
		}
		t = getTarget("profiled GET /api/v1/whoami", c.Endpoint+"/api/v1/whoami", map[string]string{"Authorization": "Bearer " + tok, "X-IBM-Client-Id": c.ClientID})
		if o.profileLoad == "runtimes" {
			t.name, t.url = "profiled GET /api/v1/integration-runtimes", c.Endpoint+"/api/v1/integration-runtimes"
		}
	}
	t.pid, t.sluice = p.cmd.Process.Pid, true
	if _, err := measure(o, tmp, t, o.warmup); err != nil {
		return err
	}
	res, err := measure(o, tmp, t, o.duration)
	if err != nil {
		return err
	}
	p.stop()
	pprofTop := func(args ...string) string {
		out, err := exec.Command("go", append(append([]string{"tool", "pprof", "-top"}, args...), path)...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("go tool pprof %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	fmt.Fprintf(rep, "\n### CPU profile of sluice serve under the %s load (%.0f req/s, %.0f µs CPU/request while profiled; %s)\n\n```\n%s```\n\nby cumulative time:\n\n```\n%s```\n",
		o.profileLoad, res.rps, us(res.cpuPerReq), path, pprofTop("-nodecount=35"), pprofTop("-cum", "-nodecount=45"))
	path += ".block"
	fmt.Fprintf(rep, "\nwhere goroutines wait (block profile, by cumulative delay; %s):\n\n```\n%s```\n", path, pprofTop("-cum", "-nodecount=45"))
	return nil
}

// ---- small helpers ----

// loadStart is the load average when the measurements began.
var loadStart string

// loadAvg returns the 1, 5 and 15 minute load averages of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tokenbench: "+format+"\n", args...)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func column(rs []result, f func(result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func list(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, ", ")
}
