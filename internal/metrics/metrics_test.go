package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// scrape reads the control plane's /metrics over HTTP.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	return fams
}

// value is the counter, gauge or histogram count of the series of name
// whose labels include want; -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	total, found := 0.0, false
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	if !found {
		return -1
	}
	return total
}

func labelValues(f *dto.MetricFamily, name string) map[string]bool {
	out := map[string]bool{}
	if f == nil {
		return out
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == name {
				out[l.GetValue()] = true
			}
		}
	}
	return out
}

func TestControlPlaneMetricsMoveWithRealRequests(t *testing.T) {
	maddr := servertest.FreeAddr(t)
	s := servertest.Start(t, servertest.Options{Args: []string{"--metrics-listen", maddr, "--rate-limit-client", "40/1h"}})
	murl := "http://" + maddr + "/metrics"
	before := scrape(t, murl)
	if v := value(before, "sluice_http_requests_total", map[string]string{"route": "GET /api/v1/whoami"}); v > 0 {
		t.Fatalf("whoami counted %v before any call", v)
	}

	admin := s.Admin(t) // one token issued
	if resp, _, err := servertest.Exchange(s.URL, s.Creds.ClientID, s.Creds.ClientSecret, s.Creds.InstanceID, "sk-wrong"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("bad exchange: %v %v", resp, err)
	}
	if code, body := admin.Do("GET", "/api/v1/whoami", nil); code != 200 {
		t.Fatalf("whoami: %d %s", code, body)
	}
	// Many distinct names and paths: the route label stays the pattern.
	for i := range 20 {
		if code, _ := admin.Do("GET", fmt.Sprintf("/api/v1/configurations/no-such-%d", i), nil); code != 404 {
			t.Fatalf("configuration %d: %d", i, code)
		}
	}
	for i := range 200 {
		resp, err := http.Get(fmt.Sprintf("%s/nowhere/%d/%s", s.URL, i, strings.Repeat("x", i%7)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A runtime whose BAR cannot be fetched still gets reconciled (and
	// counted in its phase).
	rt := map[string]any{"metadata": map[string]any{"name": "rt-zq"}, "spec": map[string]any{"barURL": []string{"https://127.0.0.1:1/none.bar"}, "replicas": 1}}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/rt-zq", rt); code != 201 {
		t.Fatalf("put runtime: %d %s", code, body)
	}
	// Over the client's limit: refused with 429 and counted.
	refused := false
	for range 40 {
		if code, _ := admin.Do("GET", "/api/v1/whoami", nil); code == 429 {
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("the rate limit never refused")
	}

	var m map[string]*dto.MetricFamily
	deadline := time.Now().Add(30 * time.Second)
	for {
		m = scrape(t, murl)
		if value(m, "sluice_reconcile_duration_seconds", nil) > 0 && value(m, "sluice_runtimes", nil) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconcile of the runtime counted: %v, runtimes %v", value(m, "sluice_reconcile_duration_seconds", nil),
				value(m, "sluice_runtimes", nil))
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"sluice_http_requests_total", map[string]string{"route": "GET /api/v1/whoami", "code": "2xx"}, 1},
		{"sluice_http_requests_total", map[string]string{"route": "GET /api/v1/whoami", "code": "4xx"}, 1},
		{"sluice_http_requests_total", map[string]string{"route": "POST /api/v1/tokens", "code": "2xx"}, 1},
		{"sluice_http_requests_total", map[string]string{"route": "POST /api/v1/tokens", "code": "4xx"}, 1},
		{"sluice_http_requests_total", map[string]string{"route": "GET /api/v1/configurations/{name}", "code": "4xx"}, 20},
		{"sluice_http_requests_total", map[string]string{"route": "unmatched", "code": "4xx"}, 200},
		{"sluice_http_request_duration_seconds", map[string]string{"route": "GET /api/v1/whoami"}, 2},
		{"sluice_tokens_total", map[string]string{"grant": "api_key", "outcome": "issued"}, 1},
		{"sluice_tokens_total", map[string]string{"grant": "api_key", "outcome": "refused", "reason": "bad_credentials"}, 1},
		{"sluice_rate_limit_refusals_total", map[string]string{"policy": "client"}, 1},
		{"sluice_store_query_duration_seconds", map[string]string{"kind": "select"}, 1},
		{"sluice_store_query_duration_seconds", map[string]string{"kind": "tx"}, 1},
		{"sluice_reconcile_duration_seconds", nil, 1},
		{"sluice_runtimes", nil, 1},
		{"sluice_runtimes", map[string]string{"phase": "Ready"}, 0},
		{"sluice_reconciler_queue_depth", nil, 0},
		{"sluice_http_requests_in_flight", nil, 0},
		{"go_goroutines", nil, 1},
		{"process_resident_memory_bytes", nil, 1},
	} {
		if v := value(m, c.name, c.labels); v < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min)
		}
	}
	// Cardinality: 220 distinct paths gave a handful of route labels, and
	// no label holds a path or a name a caller chose.
	routes := labelValues(m["sluice_http_requests_total"], "route")
	if len(routes) > 8 {
		t.Errorf("%d route labels after a few kinds of call: %v", len(routes), routes)
	}
	for fam, f := range m {
		for _, mt := range f.Metric {
			for _, l := range mt.Label {
				if strings.Contains(l.GetValue(), "nowhere") || strings.Contains(l.GetValue(), "no-such") || strings.Contains(l.GetValue(), "rt-zq") {
					t.Errorf("%s has a label from a request: %s=%q", fam, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestMetricsListenerBusyFailsClearly(t *testing.T) {
	addr := servertest.FreeAddr(t)
	s := servertest.Start(t, servertest.Options{Args: []string{"--metrics-listen", addr}})
	cmd := exec.Command(servertest.Binary(t), "serve", "--listen", servertest.FreeAddr(t), "--data-dir", t.TempDir(), "--metrics-listen", addr)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--metrics-listen") {
		t.Fatalf("second control plane on a busy metrics port: %v\n%s", err, out)
	}
	_ = s
}

// BenchmarkWhoami measures what the metrics middleware costs on a cheap
// authenticated call, over real HTTP against the real binary: compare the
// two sub-benchmarks' ns/op.
func BenchmarkWhoami(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", on), func(b *testing.B) {
			args := []string{"--rate-limit-client", "off", "--rate-limit-instance", "off", "--log-level", "warn", "--runtime-backend", "none"}
			if on {
				args = append(args, "--metrics-listen", servertest.FreeAddr(b))
			}
			s := servertest.Start(b, servertest.Options{Args: args})
			admin := s.Admin(b)
			b.ResetTimer()
			for b.Loop() {
				if code, _ := admin.Do("GET", "/api/v1/whoami", nil); code != 200 {
					b.Fatal(code)
				}
			}
		})
	}
}
