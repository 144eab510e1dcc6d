// Command deploybench measures deployment through the public API against
// a real `sluice serve` with the local backend:
//
//  1. PUT an integration runtime → the first 200 from its flow endpoint,
//     over N runtimes (median, min, max). Target: median under 1 s.
//  2. Failed requests while a runtime with 2 replicas rolls over to a new
//     generation under a steady load (4 concurrent clients). Target: 0.
//  3. Idle RSS of the control plane and of one runtime replica.
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
	flag.Parse()
	tmp, err := os.MkdirTemp("", "deploybench-")
	benchutil.Check(err)
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "sluice")
	benchutil.Run("go", "build", "-o", bin, "./cmd/sluice")
	helloV1 := helloBAR(tmp, "v1", "Hello")
	helloV2 := helloBAR(tmp, "v2", "Bonjour")

	addr := benchutil.FreeAddr()
	dataDir := filepath.Join(tmp, "data")
	cp := exec.Command(bin, "serve", "--listen", addr, "--data-dir", dataDir, "--rate-limit-client", "off",
		"--rate-limit-instance", "off", "--log-format", "json", "--log-level", "warn")
	out, _ := cp.StdoutPipe()
	cp.Stderr = io.Discard
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
	base = "http://" + addr
	token, clientID = benchutil.Login(base, filepath.Join(dataDir, "initial-credentials.json"))
	u1 := upload("hello-v1", helloV1)
	u2 := upload("hello-v2", helloV2)

	// 1. PUT → first 200.
	var dur []time.Duration
	for i := 0; i < *n; i++ {
		name := fmt.Sprintf("bench-%02d", i)
		start := time.Now()
		put(name, map[string]any{"barURL": []string{u1}})
		uri := waitEndpoint(name)
		waitOK(uri)
		dur = append(dur, time.Since(start))
		api("DELETE", "/api/v1/integration-runtimes/"+name, nil)
	}
	// Baseline: the runtime process alone, to its first 200.
	var direct []time.Duration
	for i := 0; i < min(*n, 10); i++ {
		direct = append(direct, directStart(bin, helloV1))
	}
	fmt.Printf("PUT → first 200 (%d runtimes): median %v, min %v, max %v\n", *n, median(dur), minD(dur), maxD(dur))
	fmt.Printf("baseline: sluice runtime started directly → first 200: median %v\n", median(direct))
	fmt.Printf("ratio (control plane path / direct start): %.1f\n", float64(median(dur))/float64(median(direct)))

	// 2. Rolling redeploy under load.
	put("roll", map[string]any{"barURL": []string{u1}, "replicas": 2})
	uri := strings.Replace(waitEndpoint("roll"), "{name}", "load", 1)
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

	// 3. Idle RSS.
	time.Sleep(3 * time.Second)
	fmt.Printf("idle RSS: control plane %s, runtime replicas %s\n", rss(cp.Process.Pid), runtimeRSS(dataDir))

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

func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.Join(strings.Fields(strings.TrimPrefix(l, "VmRSS:")), " ")
		}
	}
	return "?"
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

// waitEndpoint polls the runtime until its status lists an endpoint. A
// client would watch instead; polling at 20 ms keeps the figure honest.
func waitEndpoint(name string) string {
	for i := 0; i < 3000; i++ {
		_, b := api("GET", "/api/v1/integration-runtimes/"+name, nil)
		var st struct {
			Status struct {
				Endpoints []struct{ URI string }
			}
		}
		json.Unmarshal(b, &st)
		if len(st.Status.Endpoints) > 0 {
			return strings.Replace(st.Status.Endpoints[0].URI, "{name}", "bench", 1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	log.Fatalf("runtime %s never listed an endpoint", name)
	return ""
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
