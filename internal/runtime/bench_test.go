package runtime

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
)

const benchBody = `{"items":[{"sku":"ABC-001","qty":2,"price":9.99},{"sku":"XYZ-042","qty":1,"price":5},{"sku":"LMN-777","qty":3,"price":1.25}]}`

// loadedRuntime loads the BARs built from project dirs into a runtime
// without listeners, for benchmarks and handler tests.
func loadedRuntime(tb testing.TB, dirs ...string) *Runtime {
	tb.Helper()
	return loadedRuntimeWith(tb, Options{}, dirs...)
}

// loadedRuntimeWith is loadedRuntime with options (BARs are the dirs').
func loadedRuntimeWith(tb testing.TB, opts Options, dirs ...string) *Runtime {
	tb.Helper()
	var bars []string
	for _, dir := range dirs {
		data, _, err := bar.Build(context.Background(), dir, nil)
		if err != nil {
			tb.Fatal(err)
		}
		p := filepath.Join(tb.TempDir(), filepath.Base(dir)+".bar")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			tb.Fatal(err)
		}
		bars = append(bars, p)
	}
	opts.BARs, opts.LogOutput = bars, io.Discard
	rt, err := newRuntime(opts)
	if err != nil {
		tb.Fatal(err)
	}
	if err := rt.load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rt.closeArchives)
	return rt
}

// discard is a ResponseWriter that keeps nothing, so the benchmark measures
// the runtime rather than a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkServeFlow is the runtime's share of HTTP → map → reply: routing,
// message, flow run, answer, metrics (no network). Compare with
// BenchmarkHandWritten, the same transform as bench/baseline does it.
func BenchmarkServeFlow(b *testing.B) {
	rt := loadedRuntime(b, "../../bench/project")
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/transform/acme", strings.NewReader(benchBody))
		req.Header.Set("Content-Type", "application/json")
		clear(w.h)
		rt.router.ServeHTTP(w, req)
	}
}

func BenchmarkHandWritten(b *testing.B) {
	type item struct {
		SKU   string  `json:"sku"`
		Qty   float64 `json:"qty"`
		Price float64 `json:"price"`
	}
	type summary struct {
		Customer string   `json:"customer"`
		SKUs     []string `json:"skus"`
		Quantity float64  `json:"quantity"`
		Total    float64  `json:"total"`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /transform/{customer}", func(w http.ResponseWriter, r *http.Request) {
		var o struct{ Items []item }
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
			http.Error(w, "bad", 400)
			return
		}
		s := summary{Customer: r.PathValue("customer")}
		for _, it := range o.Items {
			s.SKUs = append(s.SKUs, it.SKU)
			s.Quantity += it.Qty
			s.Total += it.Price * it.Qty
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	})
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/transform/acme", strings.NewReader(benchBody))
		req.Header.Set("Content-Type", "application/json")
		clear(w.h)
		mux.ServeHTTP(w, req)
	}
}

// BenchmarkServeFlowTraced is BenchmarkServeFlow with the user and service
// traces on; with them off (BenchmarkServeFlow) the engine gets a nil
// Tracer and no event is built.
func BenchmarkServeFlowTraced(b *testing.B) {
	rt := loadedRuntime(b, "../../bench/project")
	rt.trace.user.start(time.Now())
	rt.trace.service.start(time.Now())
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/transform/acme", strings.NewReader(benchBody))
		req.Header.Set("Content-Type", "application/json")
		clear(w.h)
		rt.router.ServeHTTP(w, req)
	}
}
