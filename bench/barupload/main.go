// Command barupload measures BAR uploads to a real control plane: a ~50 MB
// BAR is PUT to /api/v1/bar-files (streamed to disk, validated, stored in
// chunks) and timed, next to a bare net/http handler that only streams the
// same bytes to a file while hashing them, measured in the same run. It
// reports MB/s of both, their ratio, and the control plane's peak RSS
// (VmHWM), which shows whether uploads stream or sit in memory.
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
	flag.Parse()

	tmp, err := os.MkdirTemp("", "barupload-")
	benchutil.Check(err)
	defer os.RemoveAll(tmp)
	if *sluiceBin == "" {
		*sluiceBin = filepath.Join(tmp, "sluice")
		benchutil.Run("go", "build", "-o", *sluiceBin, "./cmd/sluice")
	}
	barPath := buildBAR(tmp, *mb)
	fi, _ := os.Stat(barPath)
	size := fi.Size()
	fmt.Printf("BAR: %.1f MB (%d bytes, incompressible static files)\n", float64(size)/1e6, size)

	// The control plane, pinned to CPU 0 when taskset is there.
	dataDir := filepath.Join(tmp, "data")
	addr := benchutil.FreeAddr()
	args := []string{*sluiceBin, "serve", "--listen", addr, "--data-dir", dataDir, "--rate-limit-client", "off",
		"--rate-limit-instance", "off", "--runtime-backend", "none", "--log-format", "json", "--log-level", "warn"}
	if *storeDSN != "" {
		args = append(args, "--store", *storeDSN)
	}
	if _, err := exec.LookPath("taskset"); err == nil {
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

	// Baseline: stream to a file and hash, nothing else.
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	benchutil.Check(err)
	go http.Serve(bl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.CreateTemp(tmp, "baseline-*")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer os.Remove(f.Name())
		defer f.Close()
		h := sha256.New()
		io.Copy(io.MultiWriter(f, h), r.Body)
		fmt.Fprintf(w, `{"sha256":"%x"}`, h.Sum(nil))
	}))
	baseURL := "http://" + bl.Addr().String() + "/upload"

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
	var sl, base []float64
	for i := 0; i < *rounds; i++ {
		base = append(base, upload(baseURL, barPath, size, "", ""))
		sl = append(sl, upload(fmt.Sprintf("%s/api/v1/bar-files/big-%d", url, i), barPath, size, token, clientID))
	}
	close(stopSampling)
	<-sampled
	ms, mbase := median(sl), median(base)
	fmt.Printf("sluice upload (stream, validate, store):  median %.1f MB/s  rounds %s\n", ms, fmtAll(sl))
	fmt.Printf("baseline (stream to file, hash):          median %.1f MB/s  rounds %s\n", mbase, fmtAll(base))
	fmt.Printf("ratio sluice/baseline: %.2f\n", ms/mbase)
	fmt.Printf("control plane RSS: idle before %s, peak during uploads %d kB, after %s  (BAR %.0f MB)\n",
		rssBefore, peakKB, status(pid, "VmRSS"), float64(size)/1e6)
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

func upload(url, path string, size int64, token, clientID string) float64 {
	f, err := os.Open(path)
	benchutil.Check(err)
	defer f.Close()
	req, err := http.NewRequest("PUT", url, f)
	benchutil.Check(err)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-IBM-Client-Id", clientID)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	benchutil.Check(err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	el := time.Since(start)
	if resp.StatusCode/100 != 2 {
		log.Fatalf("upload to %s: %d %s", url, resp.StatusCode, body)
	}
	return float64(size) / 1e6 / el.Seconds()
}

// buildBAR makes a valid project whose static files are mb MB of random
// (incompressible) bytes, and builds it into a BAR.
func buildBAR(tmp string, mb int) string {
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
	out := filepath.Join(tmp, "big.bar")
	_, err := bar.BuildFile(context.Background(), dir, out, nil)
	benchutil.Check(err)
	return out
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
		fmt.Fprintf(&b, "%.0f", x)
	}
	return b.String()
}
