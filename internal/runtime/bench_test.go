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

	"github.com/sluice-dev/sluice/bench/handwritten"
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

// heavyBody is the heavy scenario's ~20 KB order (bench/heavy.json), for
// bench/project's lines flow: a validate and a for-each over 120 lines.
func heavyBody(tb testing.TB) string {
	tb.Helper()
	data, err := os.ReadFile("../../bench/heavy.json")
	if err != nil {
		tb.Fatal(err)
	}
	return string(data)
}

func benchServe(b *testing.B, h http.Handler, path, body string) {
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

// BenchmarkServeFlowLines is the heavy scenario through the runtime;
// compare with BenchmarkHandWrittenLines (bench/handwritten, what
// bench/baseline serves).
func BenchmarkServeFlowLines(b *testing.B) {
	rt := loadedRuntime(b, "../../bench/project")
	benchServe(b, rt.router, "/lines/acme", heavyBody(b))
}

func BenchmarkHandWrittenLines(b *testing.B) {
	benchServe(b, handwritten.Mux(), "/lines/acme", heavyBody(b))
}

// TestBenchProjectMatchesHandWritten keeps the benchmarks honest: the
// runtime and the hand-written handlers give the same answers to both
// scenarios' requests, and both refuse an order the schema refuses.
func TestBenchProjectMatchesHandWritten(t *testing.T) {
	rt := loadedRuntime(t, "../../bench/project")
	badSKU := strings.Replace(heavyBody(t), `"sku":"HKN-001"`, `"sku":"hkn-1"`, 1)
	for _, c := range []struct {
		path, body string
		status     int
	}{
		{"/transform/acme", benchBody, 200},
		{"/lines/acme", heavyBody(t), 200},
		{"/lines/acme", badSKU, 400},
		{"/lines/acme", `{"id":"x","items":[]}`, 400},
	} {
		var answers [2]any
		for i, h := range []http.Handler{rt.router, handwritten.Mux()} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("POST", c.path, strings.NewReader(c.body)))
			if w.Code != c.status {
				t.Fatalf("%s (%d bytes), handler %d: status %d, want %d: %s", c.path, len(c.body), i, w.Code, c.status, w.Body)
			}
			if err := json.Unmarshal(w.Body.Bytes(), &answers[i]); err != nil {
				t.Fatal(err)
			}
		}
		if c.status != 200 {
			continue
		}
		a, _ := json.Marshal(answers[0])
		h, _ := json.Marshal(answers[1])
		if string(a) != string(h) {
			t.Errorf("%s: the runtime and the hand-written handler disagree:\n%s\n%s", c.path, a, h)
		}
	}
}
