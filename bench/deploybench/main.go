// Command deploybench measures deployment through the public API against
// a real `sluice serve` with the local backend:
//
//  1. PUT an integration runtime → the first 200 from its flow endpoint,
//     over N runtimes (median, min, max). Target: median under 1 s.
//  2. Failed requests while a runtime with 2 replicas rolls over to a new
//     generation under a steady load (4 concurrent clients). Target: 0.
//  3. Idle RSS of the control plane (before the first deploy; after the
//     runs with the bench's watch still open; then with no client, while
//     it manages the rolled runtime's 2 replicas) and of each replica.
//
// The baseline for (1) is the same runtime process started directly
// (`sluice runtime --bar …`) to its first 200, measured in the same run, so
// the ratio shows what the control plane adds.
//
//	go run ./bench/deploybench [-n 20]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/bench/benchutil"
	"github.com/sluice-dev/sluice/internal/bar"
)

var (
	base     string
	token    string
	clientID string
)

func main() {
	n := flag.Int("n", 20, "runtimes to deploy for the PUT → first 200 figure")
	prebuilt := flag.String("bin", "", "a sluice binary to measure instead of building ./cmd/sluice (to compare builds in one sitting)")
	flag.Parse()
	tmp, err := os.MkdirTemp("", "deploybench-")
	benchutil.Check(err)
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "sluice")
	if *prebuilt != "" {
		// Run in place, not copied: how a file was written decides the
		// page-cache folios a process maps its executable with, and so
		// its file-backed RSS. One large write(2) (os.WriteFile) gets
		// large folios on ext4 (Linux 6.16 and later), and a fault then
		// maps a whole folio: an idle control plane run from such a copy
		// held 43 MB of its executable instead of 11 MB. A binary read
		// back from disk, or linked by go build, gets small ones.
		bin, err = filepath.Abs(*prebuilt)
		benchutil.Check(err)
	} else {
		benchutil.Run("go", "build", "-o", bin, "./cmd/sluice")
	}
	helloV1 := helloBAR(tmp, "v1", "Hello")
	helloV2 := helloBAR(tmp, "v2", "Bonjour")

	addr := benchutil.FreeAddr()
	dataDir := filepath.Join(tmp, "data")
	cp := exec.Command(bin, "serve", "--listen", addr, "--data-dir", dataDir, "--rate-limit-client", "off",
		"--rate-limit-instance", "off", "--log-format", "json", "--log-level", "info")
	out, _ := cp.StdoutPipe()
	errOut, _ := cp.StderrPipe()
	benchutil.Check(cp.Start())
	defer func() {
		cp.Process.Kill()
		cp.Wait()
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "sluice: serving ") {
			break
		}
	}
	go io.Copy(io.Discard, out)
	go followLog(errOut)
	base = "http://" + addr
	token, clientID = benchutil.Login(base, filepath.Join(dataDir, "initial-credentials.json"))
	u1 := upload("hello-v1", helloV1)
	u2 := upload("hello-v2", helloV2)
	// Idle: the control plane gives back memory once work stops (a tick
	// after the last request, package procmem).
	time.Sleep(3 * time.Second)
	idleCP := rss(cp.Process.Pid)
	// That is a second or two after the trim; what the periodic work
	// (reconcile passes every 2 s, samples every 10 s) maps again shows
	// after a longer spell.
	time.Sleep(10 * time.Second)
	idleCP += ", " + rss(cp.Process.Pid) + " 10 s later"

	// 1. PUT → first 200, the status followed by a watch as a client
	// would (an event as soon as the status lists the endpoint).
	ready, endWatch := watchEndpoints()
	var dur, direct []time.Duration
	var ph phaseTimes
	for i := 0; i < *n; i++ {
		name := fmt.Sprintf("bench-%02d", i)
		start := time.Now()
		put(name, map[string]any{"barURL": []string{u1}})
		putDone := time.Now()
		uri := waitEndpoint(ready, name)
		listed := time.Now()
		waitOK(uri)
		done := time.Now()
		dur = append(dur, done.Sub(start))
		ph.add(name, start, putDone, listed, done)
		ph.own = append(ph.own, ownStartup(dataDir, name)...)
		api("DELETE", "/api/v1/integration-runtimes/"+name, nil)
		// Baseline: the runtime process alone, to its first 200,
		// interleaved so that both see the same load on the machine.
		direct = append(direct, directStart(bin, helloV1))
	}
	fmt.Printf("PUT → first 200 (%d runtimes): median %v, min %v, max %v\n", *n, median(dur), minD(dur), maxD(dur))
	fmt.Printf("baseline: sluice runtime started directly → first 200: median %v\n", median(direct))
	fmt.Printf("ratio (control plane path / direct start): %.1f\n", float64(median(dur))/float64(median(direct)))
	ph.print()

	// 2. Rolling redeploy under load.
	put("roll", map[string]any{"barURL": []string{u1}, "replicas": 2})
	uri := strings.Replace(waitEndpoint(ready, "roll"), "bench", "load", 1)
	go func() {
		for range ready { // the watch keeps going; nothing waits for it now
		}
	}()
	waitOK(uri)
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for i := 0; i < 1_000_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(uri)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(time.Second)
	rollStart := time.Now()
	put("roll", map[string]any{"barURL": []string{u2}, "replicas": 2})
	for i := 0; i < 600; i++ {
		if b := get(uri); strings.Contains(b, "Bonjour") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	rollTime := time.Since(rollStart)
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	fmt.Printf("rolling redeploy (2 replicas) under load: %d requests, %d failed; new generation answering after %v\n",
		ok.Load()+failed.Load(), failed.Load(), rollTime.Round(time.Millisecond))

	// 3. Idle RSS: the control plane before any runtime existed, and
	// both once the load is over.
	time.Sleep(3 * time.Second)
	fmt.Printf("idle RSS: control plane %s before the first deploy, %s after the runs (this bench's watch still open: it lists the runtimes every 500 ms); runtime replicas %s\n",
		idleCP, rss(cp.Process.Pid), runtimeRSS(dataDir))
	// With no client left: the control plane only supervises and
	// reconciles what runs (the bench-NN runtimes were deleted as they
	// were measured; roll's 2 replicas run). It gives memory back a tick
	// after the watch ends (that is a request ending); what it holds 10 s
	// later is what its own periodic work maps again.
	endWatch()
	cpu0 := cpuTime(cp.Process.Pid)
	time.Sleep(10 * time.Second)
	fmt.Printf("idle control plane, no client, managing 1 runtime of 2 replicas: %.1f ms of CPU per second; RSS %s; %s\n",
		float64(cpuTime(cp.Process.Pid)-cpu0)/float64(time.Millisecond)/10, rss(cp.Process.Pid), rssBySection(cp.Process.Pid))
	// Pages mapped again stay mapped until the next trim: a longer idle
	// spell maps what every periodic task touches (gateway resyncs every
	// 5 s, samples every 10 s, sweeps).
	time.Sleep(20 * time.Second)
	fmt.Printf("  30 s after the watch ended: RSS %s; %s\n", rss(cp.Process.Pid), rssBySection(cp.Process.Pid))

	// Runtimes outlive their control plane on purpose: delete this one,
	// and end anything still running from the data dir.
	api("DELETE", "/api/v1/integration-runtimes/roll", nil)
	killUnder(dataDir)
}

// killUnder SIGKILLs the processes whose command line names dir.
func killUnder(dir string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	}
}

func helloBAR(tmp, dirName, word string) []byte {
	dir := filepath.Join(tmp, dirName)
	benchutil.Check(os.MkdirAll(filepath.Join(dir, "flows"), 0o755))
	benchutil.Check(os.WriteFile(filepath.Join(dir, "sluice.yaml"), []byte("name: hello\nversion: 1.0.0\n"), 0o644))
	benchutil.Check(os.WriteFile(filepath.Join(dir, "flows", "hello.yaml"), []byte(fmt.Sprintf(
		"flow: hello\ntrigger:\n  http:\n    method: GET\n    path: /hello/{name}\nsteps:\n  - map: '{greeting: \"%s, \\(.params.name)!\"}'\n", word)), 0o644))
	b, _, err := bar.Build(context.Background(), dir, nil)
	benchutil.Check(err)
	return b
}

func directStart(bin string, barBytes []byte) time.Duration {
	f, err := os.CreateTemp("", "direct-*.bar")
	benchutil.Check(err)
	f.Write(barBytes)
	f.Close()
	defer os.Remove(f.Name())
	addr := benchutil.FreeAddr()
	start := time.Now()
	cmd := exec.Command(bin, "runtime", "--bar", f.Name(), "--listen", addr, "--admin-listen", benchutil.FreeAddr())
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	benchutil.Check(cmd.Start())
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	waitOK("http://" + addr + "/hello/x")
	return time.Since(start)
}

// rss is a process's resident set: in all, then its anonymous part
// (heap, stacks) and its file-backed part (mostly the executable's pages).
func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	v := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, rest, ok := strings.Cut(l, ":"); ok {
			v[k] = strings.Join(strings.Fields(rest), " ")
		}
	}
	return fmt.Sprintf("%s (anon %s, file %s)", v["VmRSS"], v["RssAnon"], v["RssFile"])
}

// cpuTime is the CPU a process has used so far (user and system), from
// /proc/PID/stat in clock ticks of 10 ms (USER_HZ is 100 on Linux).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count fields after it.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var utime, stime int64
	fmt.Sscanf(f[11], "%d", &utime) // field 14
	fmt.Sscanf(f[12], "%d", &stime) // field 15
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// runtimeRSS finds runtime processes started for this data dir.
func runtimeRSS(dataDir string) string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(dataDir)) || !bytes.Contains(cmdline, []byte("runtime")) {
			continue
		}
		var pid int
		fmt.Sscanf(e.Name(), "%d", &pid)
		out = append(out, rss(pid))
	}
	if len(out) == 0 {
		return "(none found)"
	}
	return strings.Join(out, ", ")
}

func api(method, path string, body io.Reader) (int, []byte) {
	req, _ := http.NewRequest(method, base+path, body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-IBM-Client-Id", clientID)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	benchutil.Check(err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func upload(name string, content []byte) string {
	req, _ := http.NewRequest("PUT", base+"/api/v1/bar-files/"+name, bytes.NewReader(content))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-IBM-Client-Id", clientID)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	benchutil.Check(err)
	defer resp.Body.Close()
	var out struct{ URL string }
	benchutil.Check(json.NewDecoder(resp.Body).Decode(&out))
	return out.URL
}

func put(name string, spec map[string]any) {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]string{"name": name}, "spec": spec})
	code, body := api("PUT", "/api/v1/integration-runtimes/"+name, bytes.NewReader(b))
	if code/100 != 2 {
		log.Fatalf("PUT %s: %d %s", name, code, body)
	}
}

// listed is a runtime whose status lists an endpoint.
type listed struct{ name, uri string }

// watchEndpoints follows every runtime (?watch=true, server-sent events)
// and sends each one whose status lists an endpoint; end closes the watch.
func watchEndpoints() (ch <-chan listed, end func()) {
	req, _ := http.NewRequest("GET", base+"/api/v1/integration-runtimes?watch=true", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-IBM-Client-Id", clientID)
	resp, err := http.DefaultClient.Do(req)
	benchutil.Check(err)
	if resp.StatusCode != 200 {
		log.Fatalf("watch: %s", resp.Status)
	}
	out := make(chan listed, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var o struct {
				Metadata struct{ Name string }
				Status   struct {
					Endpoints []struct{ URI string }
				}
			}
			if json.Unmarshal([]byte(data), &o) == nil && len(o.Status.Endpoints) > 0 {
				out <- listed{o.Metadata.Name, strings.Replace(o.Status.Endpoints[0].URI, "{name}", "bench", 1)}
			}
		}
		close(out) // the control plane stopped, or end was called
	}()
	return out, func() { resp.Body.Close() }
}

// waitEndpoint waits for the watch to list an endpoint of runtime name.
func waitEndpoint(ch <-chan listed, name string) string {
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				log.Fatalf("the watch ended before runtime %s listed an endpoint", name)
			}
			if l.name == name {
				return l.uri
			}
		case <-timeout:
			log.Fatalf("runtime %s never listed an endpoint", name)
		}
	}
}

// logTimes are the times the control plane logged a replica of a runtime
// as started and as ready (the first of each).
var logTimes sync.Map // runtime name → *replicaTimes

type replicaTimes struct {
	mu             sync.Mutex
	started, ready time.Time
}

// followLog reads the control plane's JSON log for the supervisor's
// "replica started" and "replica ready" lines.
func followLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Time    time.Time
			Msg     string
			Runtime string
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || (l.Msg != "replica started" && l.Msg != "replica ready") {
			continue
		}
		_, name, _ := strings.Cut(l.Runtime, "/")
		v, _ := logTimes.LoadOrStore(name, &replicaTimes{})
		t := v.(*replicaTimes)
		t.mu.Lock()
		if l.Msg == "replica started" && t.started.IsZero() {
			t.started = l.Time
		} else if l.Msg == "replica ready" && t.ready.IsZero() {
			t.ready = l.Time
		}
		t.mu.Unlock()
	}
}

// phaseTimes splits each deploy into: the PUT's answer; from it to the
// process started (the reconcile pass, materialising); from there to the
// supervisor seeing the replica ready (the runtime's start, bundle fetch
// included, and the readiness signal); from there to the watch listing
// the endpoint (the status write-back); and from there to the first 200.
type phaseTimes struct {
	put, toStart, toReady, toListed, to200 []time.Duration
	own                                    []time.Duration // the runtime's own start → ready, from its log
}

// ownStartup reads the startup time the runtime logged as ready, from its
// replica logs under the data dir (before the runtime is deleted).
func ownStartup(dataDir, name string) []time.Duration {
	logs, _ := filepath.Glob(filepath.Join(dataDir, "runtimes", "*", name, "logs", "replica-*.log"))
	var out []time.Duration
	for _, p := range logs {
		b, _ := os.ReadFile(p)
		for _, line := range bytes.Split(b, []byte("\n")) {
			var l struct{ Msg, Startup string }
			if json.Unmarshal(line, &l) == nil && l.Msg == "runtime ready" {
				if d, err := time.ParseDuration(l.Startup); err == nil {
					out = append(out, d)
				}
			}
		}
	}
	return out
}

func (p *phaseTimes) add(name string, start, putDone, listed, done time.Time) {
	p.put = append(p.put, putDone.Sub(start))
	p.to200 = append(p.to200, done.Sub(listed))
	// The log line may trail the event it reports by a little.
	var rt *replicaTimes
	for i := 0; i < 100; i++ {
		if v, ok := logTimes.Load(name); ok {
			rt = v.(*replicaTimes)
			rt.mu.Lock()
			ok := !rt.ready.IsZero()
			rt.mu.Unlock()
			if ok {
				break
			}
		}
		time.Sleep(time.Millisecond)
	}
	if rt == nil {
		return
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.started.IsZero() || rt.ready.IsZero() {
		return
	}
	p.toStart = append(p.toStart, rt.started.Sub(putDone))
	p.toReady = append(p.toReady, rt.ready.Sub(rt.started))
	p.toListed = append(p.toListed, listed.Sub(rt.ready))
}

func (p *phaseTimes) print() {
	if len(p.toStart) == 0 {
		fmt.Println("phases: the control plane's log named no replica")
		return
	}
	md := func(ds []time.Duration) string {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2].Round(100 * time.Microsecond).String()
	}
	fmt.Printf("phases (medians): PUT answered %s; → replica started %s; → replica ready %s; → endpoint listed (watch) %s; → first 200 %s\n",
		md(p.put), md(p.toStart), md(p.toReady), md(p.toListed), md(p.to200))
	if len(p.own) > 0 {
		fmt.Printf("  (of replica started → ready, the runtime's own start → ready as it logs it: median %s)\n", md(p.own))
	}
}

func waitOK(uri string) {
	c := &http.Client{Timeout: 2 * time.Second}
	for i := 0; i < 3000; i++ {
		if resp, err := c.Get(uri); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	log.Fatalf("%s never answered 200", uri)
}

func get(uri string) string {
	resp, err := http.Get(uri)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Millisecond)
}

func minD(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = min(m, d)
	}
	return m.Round(time.Millisecond)
}

func maxD(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = max(m, d)
	}
	return m.Round(time.Millisecond)
}
