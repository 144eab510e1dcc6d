package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// deployHello uploads examples/hello through the dashboard, runs it as
// runtime hello and waits until it serves; it returns the greeting URL
// with {name} in it.
func deployHello(t *testing.T, srv *servertest.Server, b *browser, admin *servertest.Client) string {
	t.Helper()
	data, _, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", "hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := csrf(t, b.get("/bar-files"))
	if p := b.upload("/bar-files", map[string]string{"csrf": tok}, "hello.bar", data); p.code != http.StatusSeeOther {
		t.Fatalf("upload = %d\n%s", p.code, p.body)
	}
	if p := b.post("/runtimes", url.Values{"csrf": {tok}, "name": {"hello"}, "replicas": {"1"}, "bar": {"hello"}}); p.code != http.StatusSeeOther {
		t.Fatalf("create runtime = %d\n%s", p.code, p.body)
	}
	var endpoint string
	for i := 0; endpoint == ""; i++ {
		_, body := admin.Do("GET", "/api/v1/integration-runtimes/hello", nil)
		var rt struct {
			Status struct {
				Phase     string
				Endpoints []struct{ URI string }
			}
		}
		json.Unmarshal(body, &rt)
		if rt.Status.Phase == "Ready" && len(rt.Status.Endpoints) > 0 {
			endpoint = rt.Status.Endpoints[0].URI
			break
		}
		if i > 1200 {
			t.Fatalf("hello not Ready: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return endpoint
}

// The runtime page draws request rate, error rate and latency from the
// control plane's samples of the runtime's metrics, for the runtime and
// each flow, as SVG images the status stream tells the page to reload; the
// overview counts runtimes by phase, token exchanges and BAR storage.
func TestRuntimeChartsAndOverview(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--metrics-sample-interval", "200ms"}})
	c := srv.Creds
	admin := srv.Login(t, c.ClientID, c.ClientSecret, c.InstanceID, c.APIKey)
	b := newBrowser(t, srv.URL)
	if p := b.login(c.InstanceID, c.Username, c.Password); p.code != http.StatusSeeOther {
		t.Fatalf("login = %d", p.code)
	}
	// Before the runtime runs: an empty chart, not an error.
	if p := b.get("/runtimes/nope/charts/requests.svg"); p.code != http.StatusNotFound {
		t.Fatalf("chart of a runtime that does not exist = %d", p.code)
	}
	endpoint := deployHello(t, srv, b, admin)

	// Load: requests while the sampler takes a few intervals.
	var svg page
	for i := 0; ; i++ {
		resp, err := http.Get(strings.Replace(endpoint, "{name}", "chart", 1))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if i%20 == 0 {
			svg = b.get("/runtimes/hello/charts/requests.svg")
			if strings.Contains(svg.body, "<path") {
				break
			}
		}
		if i > 20000 {
			t.Fatalf("no line in the requests chart after %d requests:\n%s", i, svg.body)
		}
	}
	if !strings.HasPrefix(svg.body, "<svg") || strings.Contains(svg.body, "<script") {
		t.Fatalf("requests chart: %s", svg.body)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/runtimes/hello/charts/latency.svg?flow=hello/hello", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "image/svg+xml" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("latency chart = %d %s, CSP %q", resp.StatusCode, ct, resp.Header.Get("Content-Security-Policy"))
	}
	if lat := b.get("/runtimes/hello/charts/latency.svg"); !strings.Contains(lat.body, "p99") || !strings.Contains(lat.body, "<path") {
		t.Fatalf("latency chart without its p99 line: %s", lat.body)
	}
	if p := b.get("/runtimes/hello/charts/secrets.svg"); p.code != http.StatusNotFound || !strings.Contains(p.body, "requests.svg") {
		t.Fatalf("unknown chart = %d %s", p.code, p.body)
	}

	rp := b.get("/runtimes/hello")
	for _, want := range []string{`data-charts="hello"`, `src="/runtimes/hello/charts/requests.svg?seq=`, `Flow hello/hello`,
		`/runtimes/hello/charts/errors.svg?flow=hello%2Fhello&amp;seq=`, `req/s`} {
		if !strings.Contains(rp.body, want) {
			t.Errorf("runtime page lacks %s", want)
		}
	}

	// The status stream of the runtime's page says when a sample came.
	req, _ = http.NewRequest("GET", srv.URL+"/runtimes/events?name=hello", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err = b.c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	seqs := map[float64]bool{}
	for sc.Scan() && len(seqs) < 2 {
		if line := sc.Text(); line == "event: charts" && sc.Scan() {
			var ev struct {
				Name string
				Seq  float64
				Now  string
			}
			json.Unmarshal([]byte(strings.TrimPrefix(sc.Text(), "data: ")), &ev)
			if ev.Name != "hello" || !strings.Contains(ev.Now, "req/s") {
				t.Fatalf("charts event %s", sc.Text())
			}
			seqs[ev.Seq] = true
		}
	}
	cancel()
	resp.Body.Close()
	if len(seqs) < 2 {
		t.Fatalf("the stream told of %d samples, want a new one after the first", len(seqs))
	}

	ov := b.get("/overview")
	if ov.code != 200 {
		t.Fatalf("overview = %d", ov.code)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`phase-Ready">Ready</span></td><td data-label="Runtimes">1<`),
		regexp.MustCompile(`id="tokens-minute">[1-9][0-9]* issued`),
		regexp.MustCompile(`id="bar-storage">[0-9.]+ (B|KiB) in 1 BAR file, of a quota of 1 GiB \(0.0%\)`),
		regexp.MustCompile(`src="/overview/tokens.svg"`),
	} {
		if !want.MatchString(ov.body) {
			t.Errorf("overview lacks %s\n%s", want, ov.body)
		}
	}
	if tk := b.get("/overview/tokens.svg"); tk.code != 200 || !strings.Contains(tk.body, "issued") || !strings.Contains(tk.body, "<path") {
		t.Errorf("token chart = %d %s", tk.code, tk.body)
	}
}
