// Command barupload measures BAR uploads to a real control plane: a ~50 MB
// BAR is PUT to /api/v1/bar-files (streamed to disk, validated, stored) and
// timed, next to a bare net/http handler that only streams the
// same bytes to a file while hashing them, measured in the same run. Both
// servers are processes of their own pinned to CPU 0 when taskset is there
// (the bare one is this program again, with -bare). It reports MB/s and CPU
// time per MB of both, their ratios, and the control plane's peak RSS while
// uploading, which shows whether uploads stream or sit in memory.
//
//	go run ./bench/barupload [-sluice path] [-mb 50] [-rounds 5] [-store postgres://…]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/bench/benchutil"
	"github.com/sluice-dev/sluice/internal/bar"
)

func main() {
	sluiceBin := flag.String("sluice", "", "sluice binary (default: go build ./cmd/sluice)")
	mb := flag.Int("mb", 50, "size of the BAR in MB")
	rounds := flag.Int("rounds", 5, "uploads of each kind")
	storeDSN := flag.String("store", "", "store for the control plane (default SQLite)")
	bare := flag.String("bare", "", "internal: serve only the bare upload handler on this address")
	bareDir := flag.String("bare-dir", "", "internal: where the bare handler writes")
	flag.Parse()
	if *bare != "" {
		serveBare(*bare, *bareDir)
		return
	}

	tmp, err := os.MkdirTemp("", "barupload-")
	benchutil.Check(err)
	defer os.RemoveAll(tmp)
	if *sluiceBin == "" {
		*sluiceBin = filepath.Join(tmp, "sluice")
		benchutil.Run("go", "build", "-o", *sluiceBin, "./cmd/sluice")
	}
	// A BAR per round: the store keeps identical content once, so
	// uploading the same bytes again would measure only its look-up.
	bars := buildBARs(tmp, *mb, *rounds)
	fi, _ := os.Stat(bars[0])
	size := fi.Size()
	fmt.Printf("BAR: %.1f MB (%d bytes, incompressible static files), %d of them, one per round\n", float64(size)/1e6, size, len(bars))
	loadavg, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("load average at the start: %s", loadavg)

	// The control plane, pinned to CPU 0 when taskset is there.
	dataDir := filepath.Join(tmp, "data")
	addr := benchutil.FreeAddr()
	args := []string{*sluiceBin, "serve", "--listen", addr, "--data-dir", dataDir, "--rate-limit-client", "off",
		"--rate-limit-instance", "off", "--runtime-backend", "none", "--log-format", "json", "--log-level", "warn"}
	if *storeDSN != "" {
		args = append(args, "--store", *storeDSN)
	}
	_, err = exec.LookPath("taskset")
	pinned := err == nil
	if pinned {
		args = append([]string{"taskset", "-c", "0"}, args...)
	}
	cp := exec.Command(args[0], args[1:]...)
	stdout, _ := cp.StdoutPipe()
	cp.Stderr = os.Stderr
	benchutil.Check(cp.Start())
	defer cp.Process.Kill()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "sluice: serving ") {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	pid := serverPID(cp.Process.Pid)
	url := "http://" + addr
	token, clientID := benchutil.Login(url, filepath.Join(dataDir, "initial-credentials.json"))
	rssBefore := status(pid, "VmRSS")

	// Baseline: stream to a file and hash, nothing else, on the same CPU.
	self, err := os.Executable()
	benchutil.Check(err)
	bareAddr := benchutil.FreeAddr()
	bargs := []string{self, "-bare", bareAddr, "-bare-dir", tmp}
	if pinned {
		bargs = append([]string{"taskset", "-c", "0"}, bargs...)
	}
	bp := exec.Command(bargs[0], bargs[1:]...)
	bp.Stderr = os.Stderr
	benchutil.Check(bp.Start())
	defer bp.Process.Kill()
	baseURL := "http://" + bareAddr + "/upload"
	waitListening(bareAddr)

	// Sample the control plane's RSS while it takes uploads (VmHWM would
	// also count the start-up's argon2id hashing of the admin password).
	var peakKB int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if kb := rssKB(pid); kb > peakKB {
				peakKB = kb
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	var sl, base, slCPU, baseCPU []float64
	for i := 0; i < *rounds; i++ {
		mbps, cpu := upload(baseURL, bp.Process.Pid, bars[i], "", "")
		base, baseCPU = append(base, mbps), append(baseCPU, cpu)
		mbps, cpu = upload(fmt.Sprintf("%s/api/v1/bar-files/big-%d", url, i), pid, bars[i], token, clientID)
		sl, slCPU = append(sl, mbps), append(slCPU, cpu)
	}
	close(stopSampling)
	<-sampled
	ms, mbase := median(sl), median(base)
	fmt.Printf("sluice upload (stream, validate, store):  median %.1f MB/s  rounds %s;  CPU ms/MB median %.2f  rounds %s\n", ms, fmtAll(sl), median(slCPU), fmtAll(slCPU))
	fmt.Printf("baseline (stream to file, hash):          median %.1f MB/s  rounds %s;  CPU ms/MB median %.2f  rounds %s\n", mbase, fmtAll(base), median(baseCPU), fmtAll(baseCPU))
	fmt.Printf("ratio sluice/baseline: %.2f (target >= 0.6); CPU per MB, baseline/sluice: %.2f\n", ms/mbase, median(baseCPU)/median(slCPU))
	fmt.Printf("control plane RSS: idle before %s, peak during uploads %d kB, after %s  (BAR %.0f MB)\n",
		rssBefore, peakKB, status(pid, "VmRSS"), float64(size)/1e6)
	loadavg, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("load average at the end: %s", loadavg)
}

// serverPID finds the sluice process under taskset (taskset execs, so the
// pid is the same; kept for clarity if that ever changes).
func serverPID(pid int) int { return pid }

func status(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			return strings.Join(strings.Fields(strings.TrimPrefix(line, field+":")), " ")
		}
	}
	return "?"
}

func rssKB(pid int) int64 {
	var kb int64
	fmt.Sscanf(status(pid, "VmRSS"), "%d", &kb)
	return kb
}

// serveBare is the baseline server (-bare): it streams each upload to a
// file in dir while hashing it, nothing else.
func serveBare(addr, dir string) {
	log.Fatal(http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.CreateTemp(dir, "baseline-*")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer os.Remove(f.Name())
		defer f.Close()
		h := sha256.New()
		io.Copy(io.MultiWriter(f, h), r.Body)
		fmt.Fprintf(w, `{"sha256":"%x"}`, h.Sum(nil))
	})))
}

func waitListening(addr string) {
	for range 500 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	log.Fatalf("the bare upload server did not listen on %s", addr)
}

// upload PUTs the BAR at path to url and returns MB/s and the CPU time
// (ms per MB) the server process pid spent meanwhile.
func upload(url string, pid int, path string, token, clientID string) (float64, float64) {
	f, err := os.Open(path)
	benchutil.Check(err)
	defer f.Close()
	fi, err := f.Stat()
	benchutil.Check(err)
	size := fi.Size()
	req, err := http.NewRequest("PUT", url, f)
	benchutil.Check(err)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-IBM-Client-Id", clientID)
	}
	cpu0, err := benchutil.CPUTime(pid)
	benchutil.Check(err)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	benchutil.Check(err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	el := time.Since(start)
	if resp.StatusCode/100 != 2 {
		log.Fatalf("upload to %s: %d %s", url, resp.StatusCode, body)
	}
	cpu1, err := benchutil.CPUTime(pid)
	benchutil.Check(err)
	mb := float64(size) / 1e6
	return mb / el.Seconds(), float64((cpu1 - cpu0).Microseconds()) / 1000 / mb
}

// buildBARs makes a valid project whose static files are mb MB of random
// (incompressible) bytes, and builds it into n BARs that differ in one
// small file.
func buildBARs(tmp string, mb, n int) []string {
	dir := filepath.Join(tmp, "project")
	benchutil.Check(os.MkdirAll(filepath.Join(dir, "flows"), 0o755))
	benchutil.Check(os.MkdirAll(filepath.Join(dir, "static"), 0o755))
	benchutil.Check(os.WriteFile(filepath.Join(dir, "sluice.yaml"), []byte("name: big\nversion: 1.0.0\n"), 0o644))
	benchutil.Check(os.WriteFile(filepath.Join(dir, "flows", "hello.yaml"), []byte("flow: hello\ntrigger:\n  http: {method: GET, path: /hello}\nsteps:\n  - reply: {status: 200, body: '{hello: \"world\"}'}\n"), 0o644))
	remaining := mb << 20
	for i := 0; remaining > 0; i++ {
		n := min(remaining, 16<<20) // under the per-file limit
		buf := make([]byte, n)
		rand.Read(buf)
		benchutil.Check(os.WriteFile(filepath.Join(dir, "static", fmt.Sprintf("blob-%d.bin", i)), buf, 0o644))
		remaining -= n
	}
	var bars []string
	for i := range n {
		benchutil.Check(os.WriteFile(filepath.Join(dir, "static", "round.txt"), []byte(strconv.Itoa(i)), 0o644))
		out := filepath.Join(tmp, fmt.Sprintf("big-%d.bar", i))
		_, err := bar.BuildFile(context.Background(), dir, out, nil)
		benchutil.Check(err)
		bars = append(bars, out)
	}
	return bars
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func fmtAll(xs []float64) string {
	var b bytes.Buffer
	for i, x := range xs {
		if i > 0 {
			b.WriteString(" ")
		}
		if x < 10 {
			fmt.Fprintf(&b, "%.2f", x)
		} else {
			fmt.Fprintf(&b, "%.0f", x)
		}
	}
	return b.String()
}
