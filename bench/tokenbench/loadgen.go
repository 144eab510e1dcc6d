package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// runGoLoad is the load generator used when wrk is missing: conns workers,
// each with its own keep-alive connection, sending t's request back to
// back for d (a closed loop, as wrk's is), recording every latency.
func runGoLoad(t target, conns int, d time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  int
		firstErr  error
	)
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			var lat []time.Duration
			fails := 0
			var werr error
			for ctx.Err() == nil {
				req, err := http.NewRequest(t.method, t.url, strings.NewReader(t.body))
				if err != nil {
					werr = err
					break
				}
				for k, v := range t.headers {
					req.Header.Set(k, v)
				}
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					fails++
					werr = err
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if ctx.Err() != nil {
					break // finished after the end: not counted
				}
				lat = append(lat, time.Since(t0))
				if resp.StatusCode/100 != 2 {
					fails++
				}
			}
			mu.Lock()
			latencies = append(latencies, lat...)
			failures += fails
			if firstErr == nil {
				firstErr = werr
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(latencies) == 0 {
		return result{}, fmt.Errorf("no request to %s succeeded: %v", t.url, firstErr)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	p50 := latencies[len(latencies)/2]
	p99 := latencies[min(len(latencies)-1, len(latencies)*99/100)]
	return result{rps: float64(len(latencies)) / elapsed.Seconds(), p50: p50, p99: p99, errors: failures, requests: len(latencies)}, nil
}
