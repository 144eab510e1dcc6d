package main

import (
	"os"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := `Running 5s test @ http://127.0.0.1:39973/api/v1/tokens
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   420.14ms  432.46ms   1.71s    84.45%
    Req/Sec   146.18    106.96   444.00     70.59%
  Latency Distribution
     50%  259.98ms
     75%  532.70ms
     90%  928.07ms
     99%    1.71s 
  447 requests in 5.12s, 418.63KB read
  Socket errors: connect 0, read 2, write 0, timeout 7
  Non-2xx or 3xx responses: 3
Requests/sec:     87.26
Transfer/sec:     81.72KB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.rps != 87.26 || r.p50 != 259980*time.Microsecond || r.p99 != 1710*time.Millisecond || r.requests != 447 || r.errors != 12 {
		t.Errorf("parsed %+v", r)
	}
	if _, err := parseWrk("wrk: connection refused\n"); err == nil {
		t.Error("output without figures accepted")
	}
}

func TestCPUTime(t *testing.T) {
	// Work until the counter moves past one clock tick; on a busy machine
	// that may take a while, hence the generous bound.
	deadline := time.Now().Add(20 * time.Second)
	x := 0
	for {
		for i := 0; i < 1e6; i++ {
			x += i
		}
		d, err := cpuTime(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if d > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cpu time still %v after busy work (%d)", d, x)
		}
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}
