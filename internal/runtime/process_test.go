package runtime_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// backend stands in for the systems flows call: the order backend of
// examples/orders and the helpers of testdata/lab.
type backend struct {
	srv      *httptest.Server
	mu       sync.Mutex
	orders   []map[string]any
	badAuth  int
	blocked  chan struct{} // receives when a /block request arrives
	release  chan struct{} // closed to answer every /block request
	ticks    atomic.Int64
	tickSeen chan struct{}
	// traceparent is the last one /echo-auth received.
	traceparent string
}

const (
	backendUser     = "sluice"
	backendPassword = "orders-pw-7f3a"
	backendToken    = "tok-9d1e77"
	canaryPassword  = "canary-Pw-12345"
)

func newBackend(t *testing.T) *backend {
	b := &backend{blocked: make(chan struct{}, 16), release: make(chan struct{}), tickSeen: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		user, pw, ok := r.BasicAuth()
		if !ok || user != backendUser || pw != backendPassword {
			b.mu.Lock()
			b.badAuth++
			b.mu.Unlock()
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		var order map[string]any
		if err := json.NewDecoder(r.Body).Decode(&order); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if order["customer"] == "dup" {
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"id":"ord-1"}`)
			return
		}
		b.mu.Lock()
		b.orders = append(b.orders, order)
		n := len(b.orders)
		b.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"ord-%d"}`, n)
	})
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+backendToken {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		if r.PathValue("id") == "missing" {
			http.Error(w, `{"error":"no such order"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": r.PathValue("id"), "customer": r.URL.Query().Get("customer"), "total": 24.98})
	})
	mux.HandleFunc("POST /block", func(w http.ResponseWriter, r *http.Request) {
		b.blocked <- struct{}{}
		<-b.release
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"released":true}`)
	})
	mux.HandleFunc("GET /echo-auth", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.traceparent = r.Header.Get("traceparent")
		b.mu.Unlock()
		_, pw, _ := r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"seen": r.Header.Get("Authorization"), "password": pw})
	})
	mux.HandleFunc("POST /tick", func(w http.ResponseWriter, r *http.Request) {
		b.ticks.Add(1)
		select {
		case b.tickSeen <- struct{}{}:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	b.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		select {
		case <-b.release:
		default:
			close(b.release)
		}
		b.srv.Close()
	})
	return b
}

// standardConfig is a --config-dir with the backend's URL and every
// credential the examples and testdata use.
func standardConfig(t *testing.T, b *backend, extra map[string]string) string {
	files := map[string]string{
		"serverconf/server.yaml": fmt.Sprintf("values:\n  backendURL: %s\n  pricingURL: %s\n", b.srv.URL, b.srv.URL),
		"setdbparms/backend.txt": fmt.Sprintf("# credentials of the order backend\nbackend %s %s\nbackend-token token %s\n", backendUser, backendPassword, backendToken),
		"setdbparms/canary.txt":  "canary sluice " + canaryPassword + "\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	return configDir(t, files)
}

func TestExamplesOverHTTP(t *testing.T) {
	b := newBackend(t)
	hello := buildBAR(t, "../../examples/hello")
	orders := buildBAR(t, "../../examples/orders")
	p := startRuntime(t, "--bar", hello, "--bar", orders, "--config-dir", standardConfig(t, b, nil))

	items := `{"items":[{"sku":"ABC-001","qty":2,"price":9.99},{"sku":"XYZ-042","qty":1,"price":5}]}`
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantBody   map[string]any // fields that must be equal
		wantHeader map[string]string
		wantInMsg  string // substring of an error message
	}{
		{name: "hello", method: "GET", path: "/hello/world", wantStatus: 200,
			wantBody: map[string]any{"greeting": "Hello, world!"}},
		{name: "hello with escaped name", method: "GET", path: "/hello/J%C3%BCrgen", wantStatus: 200,
			wantBody: map[string]any{"greeting": "Hello, Jürgen!"}},
		{name: "create order", method: "POST", path: "/orders/acme", body: items, wantStatus: 201,
			wantBody:   map[string]any{"id": "ord-1", "customer": "acme", "total": 24.98, "currency": "EUR"},
			wantHeader: map[string]string{"Location": "/orders/acme/ord-1"}},
		{name: "existing order", method: "POST", path: "/orders/dup", body: items, wantStatus: 409,
			wantInMsg: "order exists already: ord-1"},
		{name: "invalid order", method: "POST", path: "/orders/acme", body: `{"items":[{"sku":"bad","qty":0,"price":1}]}`,
			wantStatus: 400, wantInMsg: "schemas/order.json"},
		{name: "read order with bearer token", method: "GET", path: "/orders/acme/ord-7", wantStatus: 200,
			wantBody: map[string]any{"id": "ord-7", "customer": "acme"}},
		{name: "missing order", method: "GET", path: "/orders/acme/missing", wantStatus: 404, wantInMsg: "no order missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			a := do(t, tt.method, p.url(tt.path), body, "Content-Type", "application/json")
			if a.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", a.status, tt.wantStatus, a.body)
			}
			got := a.json(t)
			for k, v := range tt.wantBody {
				if fmt.Sprint(got[k]) != fmt.Sprint(v) {
					t.Errorf("body.%s = %v, want %v (body %s)", k, got[k], v, a.body)
				}
			}
			for k, v := range tt.wantHeader {
				if a.header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, a.header.Get(k), v)
				}
			}
			if tt.wantInMsg != "" {
				msg, _ := got["message"].(string)
				if !strings.Contains(msg, tt.wantInMsg) || got["code"] != float64(tt.wantStatus) {
					t.Errorf("error body %s does not carry code %d and %q", a.body, tt.wantStatus, tt.wantInMsg)
				}
			}
			if a.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id on the answer")
			}
		})
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.orders) != 1 || b.badAuth != 0 {
		t.Fatalf("backend got %d orders and %d bad credentials, want 1 and 0", len(b.orders), b.badAuth)
	}
	if o := b.orders[0]; o["customer"] != "acme" || o["currency"] != "EUR" || fmt.Sprint(o["total"]) != "24.98" {
		t.Errorf("backend received %v", o)
	}

	// The admin listing names every flow and the URLs of the HTTP ones.
	var listing struct {
		Flows []struct {
			Name     string `json:"name"`
			Project  string `json:"project"`
			Endpoint string `json:"endpoint"`
			Trigger  struct{ Type, TimeZone string }
		} `json:"flows"`
		Endpoints []string `json:"endpoints"`
	}
	if err := json.Unmarshal(get(t, p.adminURL("/flows")).body, &listing); err != nil {
		t.Fatal(err)
	}
	// The examples may grow; the flows this test relies on must be there.
	for _, want := range []string{p.url("/hello/{name}"), p.url("/orders/{customer}"), p.url("/orders/{customer}/{id}")} {
		if !slices.Contains(listing.Endpoints, want) {
			t.Errorf("endpoints %v lack %s", listing.Endpoints, want)
		}
	}
	for _, f := range listing.Flows {
		switch f.Name {
		case "create-order":
			if f.Endpoint != p.url("/orders/{customer}") {
				t.Errorf("create-order endpoint %q", f.Endpoint)
			}
		case "sync-prices":
			if f.Trigger.Type != "schedule" || f.Trigger.TimeZone != "Europe/Paris" {
				t.Errorf("sync-prices trigger %+v", f.Trigger)
			}
		}
	}

	if code := stop(t, p); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

func stop(t *testing.T, p *proc) int {
	t.Helper()
	p.signal(syscall.SIGTERM)
	return p.wait()
}

func TestHTTPErrorsAreJSON(t *testing.T) {
	b := newBackend(t)
	lab := buildBAR(t, "testdata/lab")
	p := startRuntime(t, "--bar", lab, "--config-dir", standardConfig(t, b, map[string]string{
		"serverconf/zz-limits.yaml": "http:\n  maxBodyBytes: 1024\n",
	}))
	big := strings.Repeat("x", 2048)
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     []string
		chunked    bool
		wantStatus int
		wantAllow  string
		wantMsg    string
	}{
		{name: "unknown path", method: "GET", path: "/nowhere", wantStatus: 404, wantMsg: "nothing is served at GET /nowhere"},
		{name: "wrong method", method: "DELETE", path: "/ping", wantStatus: 405, wantAllow: "GET, HEAD", wantMsg: "not allowed"},
		{name: "body over limit", method: "POST", path: "/echo/1/x", body: big, wantStatus: 413, wantMsg: "larger than 1024 bytes"},
		{name: "chunked body over limit", method: "POST", path: "/echo/1/x", body: big, chunked: true, wantStatus: 413, wantMsg: "larger than 1024 bytes"},
		{name: "malformed JSON", method: "POST", path: "/echo/1/x", body: `{"a":`, header: []string{"Content-Type", "application/json"},
			wantStatus: 400, wantMsg: "not valid JSON"},
		{name: "fail step", method: "GET", path: "/teapot", wantStatus: 418, wantMsg: "short and stout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // unknown length: sent chunked
				}
			}
			a := do(t, tt.method, p.url(tt.path), body, tt.header...)
			if a.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", a.status, tt.wantStatus, a.body)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			m := a.json(t)
			if m["code"] != float64(tt.wantStatus) || m["reason"] != controlPlaneReasons[tt.wantStatus] || m["error"] != "Internal error" || m["requestId"] != a.header.Get("X-Request-Id") || m["requestId"] == "" ||
				!strings.Contains(fmt.Sprint(m["message"]), tt.wantMsg) {
				t.Errorf("error body %s, want the control plane's shape, code %d, reason %s and message with %q", a.body, tt.wantStatus, controlPlaneReasons[tt.wantStatus], tt.wantMsg)
			}
			if tt.wantAllow != "" && a.header.Get("Allow") != tt.wantAllow {
				t.Errorf("Allow %q, want %q", a.header.Get("Allow"), tt.wantAllow)
			}
		})
	}

	// A request through all the message parts: params (one a {rest...}
	// wildcard with an encoded slash), query, headers, JSON body.
	a := do(t, "POST", p.url("/echo/42/a/b%2Fc?x=1&y=2"), strings.NewReader(`{"n": 12345678901234567890}`), "User-Agent", "lab-test")
	if a.status != 202 || a.header.Get("X-Echo") != "42" {
		t.Fatalf("echo: %d %v %s", a.status, a.header, a.body)
	}
	want := `{"agent":"lab-test","body":{"n":12345678901234567890},"params":{"id":"42","rest":"a/b/c"},"query":{"x":"1","y":"2"}}`
	if strings.TrimSpace(string(a.body)) != want {
		t.Errorf("echo body\n%s\nwant\n%s", a.body, want)
	}
}

// TestAnswersCarryTheirLength holds every flow answer to a Content-Length,
// whether the runtime sets it (answers over 2 KB, written out before the
// handler returns) or leaves it to net/http (shorter ones): none goes
// chunked.
func TestAnswersCarryTheirLength(t *testing.T) {
	b := newBackend(t)
	p := startRuntime(t, "--bar", buildBAR(t, "testdata/lab"), "--config-dir", standardConfig(t, b, nil))
	// 1960 and 1961: answers of 2048 and 2049 bytes
	for _, n := range []int{0, 100, 1960, 1961, 2100, 5000, 100000} {
		in, err := json.Marshal(map[string]string{"s": strings.Repeat("x", n)})
		if err != nil {
			t.Fatal(err)
		}
		a := do(t, "POST", p.url("/echo/1/x"), bytes.NewReader(in), "Content-Type", "application/json")
		if a.status != 202 {
			t.Fatalf("%d bytes: status %d: %s", n, a.status, a.body)
		}
		if cl := a.header.Get("Content-Length"); cl != strconv.Itoa(len(a.body)) {
			t.Errorf("answer of %d bytes: Content-Length %q, Transfer-Encoding %q", len(a.body), cl, a.header.Get("Transfer-Encoding"))
		}
		var echoed struct{ Body struct{ S string } }
		if err := json.Unmarshal(a.body, &echoed); err != nil || len(echoed.Body.S) != n {
			t.Errorf("answer of %d bytes does not echo the %d-byte string: %v", len(a.body), n, err)
		}
	}
}

func TestSpinningFlowDoesNotStallOthers(t *testing.T) {
	b := newBackend(t)
	p := startRuntime(t, "--bar", buildBAR(t, "testdata/lab"), "--config-dir", standardConfig(t, b, nil))

	// More spinning runs than the machine has cores.
	const spinners = 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range spinners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", p.url("/spin"), nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	eventually(t, "every spinning run to be in flight", func() bool { return p.inFlight(t, "spin") == spinners })

	for i := range 20 {
		a := get(t, p.url("/ping"))
		if a.status != 200 || !bytes.Contains(a.body, []byte(`"pong":true`)) {
			t.Fatalf("ping %d while spinning: %d %s", i, a.status, a.body)
		}
	}
	// The spinning runs were still going (their timeout is ten minutes)
	// while ping answered: isolation, not luck.
	if n := p.inFlight(t, "spin"); n != spinners {
		t.Fatalf("spin in flight %d, want %d", n, spinners)
	}
	// Cancelling the callers stops the runs: the engine honours
	// cancellation inside a jq program.
	cancel()
	wg.Wait()
	eventually(t, "the spinning runs to stop", func() bool { return p.inFlight(t, "spin") == 0 })
}

func TestGracefulDrain(t *testing.T) {
	b := newBackend(t)
	p := startRuntime(t, "--bar", buildBAR(t, "testdata/lab"), "--config-dir", standardConfig(t, b, nil))

	type result struct {
		a   answer
		err error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := client.Post(p.url("/slow"), "application/json", strings.NewReader(`{"n":1}`))
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		inflight <- result{a: answer{status: resp.StatusCode, body: body}, err: err}
	}()
	receive(t, b.blocked, "the flow's call to the backend") // the flow is now waiting on it

	p.signal(syscall.SIGTERM)
	eventually(t, "readiness to report draining", func() bool {
		a := get(t, p.adminURL("/readyz"))
		return a.status == http.StatusServiceUnavailable && bytes.Contains(a.body, []byte("draining"))
	})
	select {
	case <-p.done:
		t.Fatal("runtime exited with a request in flight")
	default:
	}
	close(b.release)
	r := receive(t, inflight, "the in-flight request's answer")
	if r.err != nil || r.a.status != 200 || !bytes.Contains(r.a.body, []byte(`"released":true`)) {
		t.Fatalf("in-flight request: %v %d %s", r.err, r.a.status, r.a.body)
	}
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d after drain, want 0", code)
	}
	if !strings.Contains(p.log.String(), `"msg":"stopped"`) {
		t.Error("no stopped log line")
	}
}

func TestSchedulesRun(t *testing.T) {
	b := newBackend(t)
	p := startRuntime(t, "--bar", buildBAR(t, "testdata/ticker"), "--config-dir", standardConfig(t, b, nil))
	receive(t, b.tickSeen, "a scheduled call to the backend")
	eventually(t, "the schedule's run to be counted", func() bool {
		m := get(t, p.adminURL("/metrics"))
		return bytes.Contains(m.body, []byte(`sluice_flow_requests_total{code="200",flow="tick",project="ticker",trigger="schedule"}`))
	})
}

func TestReplicasShareThePort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	hello := buildBAR(t, "../../examples/hello")
	first := startRuntime(t, "--bar", hello, "--listen", addr)
	second := startRuntime(t, "--bar", hello, "--listen", addr)
	if first.listen != addr || second.listen != addr {
		t.Fatalf("listening on %s and %s, want both on %s", first.listen, second.listen, addr)
	}
	if a := get(t, "http://"+addr+"/hello/both"); a.status != 200 {
		t.Fatalf("shared port: %d %s", a.status, a.body)
	}
}

func TestMetrics(t *testing.T) {
	p := startRuntime(t, "--bar", buildBAR(t, "../../examples/hello"))
	for range 3 {
		get(t, p.url("/hello/m"))
	}
	get(t, p.url("/nowhere"))
	m := string(get(t, p.adminURL("/metrics")).body)
	for _, want := range []string{
		`sluice_flow_requests_total{code="200",flow="hello",project="hello",trigger="http"} 3`,
		`sluice_flow_duration_seconds_count{flow="hello",project="hello",trigger="http"} 3`,
		`sluice_flow_duration_seconds_bucket{flow="hello",project="hello",trigger="http",le="+Inf"} 3`,
		`sluice_flow_errors_total{flow="hello",kind="timeout",project="hello"} 0`,
		`sluice_http_unmatched_total{code="404"} 1`,
		`sluice_runtime_ready 1`,
		`sluice_trace_enabled{type="user"} 0`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if a := get(t, p.adminURL("/healthz")); a.status != 200 {
		t.Errorf("healthz %d", a.status)
	}
	if a := get(t, p.adminURL("/readyz")); a.status != 200 || !bytes.Contains(a.body, []byte(`"ready"`)) {
		t.Errorf("readyz %d %s", a.status, a.body)
	}
}

// sseEvents reads server-sent events from a stream and sends each data
// line on the channel.
func sseEvents(t *testing.T, ctx context.Context, url string) <-chan map[string]any {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := (&http.Client{Transport: client.Transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, ct)
	}
	out := make(chan map[string]any, 100)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev map[string]any
				if json.Unmarshal([]byte(data), &ev) == nil {
					out <- ev
				}
			}
		}
	}()
	return out
}

func TestTraces(t *testing.T) {
	b := newBackend(t)
	p := startRuntime(t, "--bar", buildBAR(t, "testdata/lab"), "--config-dir", standardConfig(t, b, nil))

	// Off: requests record nothing.
	get(t, p.url("/ping"))
	if a := get(t, p.adminURL("/trace/user/download")); a.status != 200 || len(a.body) != 0 {
		t.Fatalf("trace recorded while off: %d %q", a.status, a.body)
	}

	for _, kind := range []string{"user", "service"} {
		if a := do(t, "POST", p.adminURL("/trace/"+kind+"/start"), nil); a.status != 200 || !bytes.Contains(a.body, []byte(`"enabled": true`)) {
			t.Fatalf("start %s trace: %d %s", kind, a.status, a.body)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	live := sseEvents(t, ctx, p.adminURL("/trace/user/stream"))

	if a := get(t, p.url("/secret")); a.status != 200 {
		t.Fatalf("secret flow: %d %s", a.status, a.body)
	}
	// The live stream shows the message going through the flow's steps.
	steps := map[string]bool{}
	timeout := time.After(waitLong)
	for len(steps) < 3 {
		select {
		case ev, ok := <-live:
			if !ok {
				t.Fatalf("the live stream ended after steps %v", steps)
			}
			if ev["flow"] == "secret" && ev["type"] == "user" {
				steps[fmt.Sprint(ev["step"])] = true
			}
		case <-timeout:
			t.Fatalf("the live stream showed only steps %v", steps)
		}
	}
	if !steps["http#0"] || !steps["reply#2"] {
		t.Errorf("live steps %v, want http#0, log#1, reply#2", steps)
	}
	cancel()

	user := get(t, p.adminURL("/trace/user/download")).body
	service := get(t, p.adminURL("/trace/service/download")).body
	if !bytes.Contains(user, []byte(`"flow":"secret"`)) || !bytes.Contains(user, []byte(`"step":"http#0"`)) {
		t.Errorf("user trace lacks the secret flow's steps:\n%s", user)
	}
	if !bytes.Contains(service, []byte(`"event":"request"`)) || !bytes.Contains(service, []byte(`"status":200`)) {
		t.Errorf("service trace lacks the request:\n%s", service)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(user), []byte("\n")) {
		if !json.Valid(line) {
			t.Errorf("user trace line is not JSON: %s", line)
		}
	}

	// The zip download holds the same events.
	z := get(t, p.adminURL("/trace/user/download?format=zip"))
	zr, err := zip.NewReader(bytes.NewReader(z.body), int64(len(z.body)))
	if err != nil {
		t.Fatalf("zip download: %v", err)
	}
	if len(zr.File) != 2 || zr.File[0].Name != "user-trace.ndjson" {
		t.Fatalf("zip holds %v", zr.File)
	}

	// Secrets: the backend echoed the credentials; neither the traces nor
	// the log show them in clear or base64.
	basic := base64.StdEncoding.EncodeToString([]byte("sluice:" + canaryPassword))
	for name, text := range map[string]string{"user trace": string(user), "service trace": string(service), "log": p.log.String()} {
		if strings.Contains(text, canaryPassword) || strings.Contains(text, basic) {
			t.Errorf("%s shows the canary secret", name)
		}
	}
	if !bytes.Contains(user, []byte("[REDACTED]")) {
		t.Error("user trace shows no redaction; did the excerpt lose the echoed credentials?")
	}

	// A flow error quoting the secret answers with it redacted.
	leak := get(t, p.url("/leak"))
	if leak.status != 502 || strings.Contains(string(leak.body), canaryPassword) || strings.Contains(string(leak.body), basic) ||
		!strings.Contains(string(leak.body), "backend echoed [REDACTED] and Basic [REDACTED]") {
		t.Errorf("leak: %d %s", leak.status, leak.body)
	}

	// Stopped: no new events, the recording stays downloadable.
	do(t, "POST", p.adminURL("/trace/user/stop"), nil)
	before := len(get(t, p.adminURL("/trace/user/download")).body)
	get(t, p.url("/ping"))
	after := get(t, p.adminURL("/trace/user/download")).body
	if len(after) != before || before == 0 {
		t.Errorf("trace changed after stop (%d → %d bytes)", before, len(after))
	}
	if a := get(t, p.adminURL("/trace/bogus")); a.status != 404 {
		t.Errorf("unknown trace type: %d", a.status)
	}
}

func TestTraceFromTheStart(t *testing.T) {
	p := startRuntime(t, "--bar", buildBAR(t, "../../examples/hello"), "--trace", "service", "--trace", "user")
	get(t, p.url("/hello/early"))
	service := string(get(t, p.adminURL("/trace/service/download")).body)
	for _, want := range []string{`"event":"load","project":"hello"`, `"event":"ready"`, `"event":"request"`} {
		if !strings.Contains(service, want) {
			t.Errorf("service trace lacks %s:\n%s", want, service)
		}
	}
	if user := get(t, p.adminURL("/trace/user/download")).body; !bytes.Contains(user, []byte(`"step":"map#0"`)) {
		t.Errorf("user trace: %s", user)
	}
	if m := get(t, p.adminURL("/metrics")).body; !bytes.Contains(m, []byte(`sluice_trace_enabled{type="service"} 1`)) {
		t.Error("metrics do not show the service trace on")
	}
}

func TestRefusesToStart(t *testing.T) {
	b := newBackend(t)
	dir := t.TempDir()
	notZip := filepath.Join(dir, "not-a-zip.bar")
	os.WriteFile(notZip, []byte("flow: hello\n"), 0o644)
	traversal := filepath.Join(dir, "traversal.bar")
	writeZip(t, traversal, map[string]string{"sluice.yaml": "name: x\n", "../../etc/cron.d/evil": "x"})
	badJQ := filepath.Join(dir, "bad-jq.bar")
	writeZip(t, badJQ, map[string]string{"sluice.yaml": "name: x\n",
		"flows/a.yaml": "flow: a\ntrigger:\n  http: {method: GET, path: /a}\nsteps:\n  - map: '{a: .b'\n"})
	hello := buildBAR(t, "../../examples/hello")
	orders := buildBAR(t, "../../examples/orders")
	lab := buildBAR(t, "testdata/lab")
	dupe := buildBARInProcess(t, "testdata/dupe")

	tests := []struct {
		name    string
		args    []string
		wantMsg []string
		notMsg  string
	}{
		{"not a zip", []string{"--bar", notZip}, []string{"not-a-zip.bar", "not a zip archive"}, ""},
		{"path traversal", []string{"--bar", traversal}, []string{`"../../etc/cron.d/evil"`, "path traversal"}, ""},
		{"invalid jq", []string{"--bar", badJQ}, []string{"bad-jq.bar", "flows/a.yaml:5:"}, ""},
		{"missing file", []string{"--bar", filepath.Join(dir, "nope.bar")}, []string{"nope.bar", "no such file"}, ""},
		{"second BAR broken", []string{"--bar", hello, "--bar", badJQ}, []string{"flows/a.yaml:5:"}, ""},
		{"conflicting routes across BARs", []string{"--bar", lab, "--bar", dupe, "--config-dir", standardConfig(t, b, nil)}, []string{"GET /ping", `"ping-again"`, `"ping"`}, ""},
		{"same project twice", []string{"--bar", hello, "--bar", hello}, []string{`project "hello" is also loaded`}, ""},
		{"unresolved credential", []string{"--bar", orders}, []string{"orders.bar", "flows/create-order.yaml:", "backend"}, ""},
		{"malformed setdbparms", []string{"--bar", hello, "--config-dir", configDir(t, map[string]string{
			"setdbparms/x.txt": "backend only-user-" + canaryPassword + "\n"})},
			[]string{"setdbparms/x.txt:1", "want `resource user password`"}, canaryPassword},
		{"unknown serverconf key", []string{"--bar", hello, "--config-dir", configDir(t, map[string]string{
			"serverconf/a.yaml": "http:\n  maxBodyByte: 10\n"})}, []string{"serverconf/a.yaml: line 2: unknown field"}, ""},
		{"unknown trace type", []string{"--bar", hello, "--trace", "debug"}, []string{`unknown trace type "debug"`}, ""},
		{"listen address taken", []string{"--bar", hello, "--config-dir", standardConfig(t, b, nil), "--admin-listen", b.srv.Listener.Addr().String()},
			[]string{"admin listener"}, canaryPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := launch(t, tt.args...)
			code := p.wait()
			log := p.log.String()
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero\n%s", log)
			}
			if strings.Contains(log, "runtime ready") {
				t.Errorf("the runtime reported ready before failing")
			}
			for _, want := range tt.wantMsg {
				if !strings.Contains(log, want) {
					t.Errorf("output lacks %q:\n%s", want, log)
				}
			}
			if tt.notMsg != "" && strings.Contains(log, tt.notMsg) {
				t.Errorf("output shows %q", tt.notMsg)
			}
		})
	}
}

func writeZip(t *testing.T, name string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for n, data := range files {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, data)
	}
	zw.Close()
	if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// controlPlaneReasons are the reason words of error bodies, written as the
// control plane writes them (internal/api: "NotFound", "BadRequest").
var controlPlaneReasons = map[int]string{400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed",
	413: "RequestEntityTooLarge", 418: "ImATeapot", 500: "InternalError", 504: "GatewayTimeout"}

// A caller's W3C traceparent reaches the backends its flow's http steps
// call: the same trace, so one trace follows a request from the API
// through the flow to its backend.
func TestTraceparentGoesOnToHTTPSteps(t *testing.T) {
	b := newBackend(t)
	p := startRuntime(t, "--bar", buildBAR(t, "testdata/lab"), "--config-dir", standardConfig(t, b, nil))
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	if a := do(t, "GET", p.url("/secret"), nil, "traceparent", "00-"+traceID+"-b7ad6b7169203331-01"); a.status != 200 {
		t.Fatalf("secret flow: %d %s", a.status, a.body)
	}
	b.mu.Lock()
	got := b.traceparent
	b.mu.Unlock()
	parts := strings.Split(got, "-")
	if len(parts) != 4 || parts[1] != traceID || parts[3] != "01" {
		t.Fatalf("the backend got traceparent %q, want one in trace %s", got, traceID)
	}
	// Without a traceparent, none is invented for the backend when
	// tracing is off.
	if a := get(t, p.url("/secret")); a.status != 200 {
		t.Fatalf("secret flow: %d", a.status)
	}
	b.mu.Lock()
	got = b.traceparent
	b.mu.Unlock()
	if got != "" {
		t.Errorf("tracing off and no caller trace, yet the backend got traceparent %q", got)
	}
}

// A supervisor that hands the runtime a pipe as --ready-fd reads one
// "ready" line once the flows are served, then the end of the pipe: it
// need not poll /readyz.
func TestReadyFDTellsWhenServing(t *testing.T) {
	hello := buildBAR(t, "../../examples/hello")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(sluiceBin, "runtime", "--bar", hello, "--listen", listen, "--admin-listen", "127.0.0.1:0", "--ready-fd", "3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	told, err := io.ReadAll(r) // the line, then EOF when the runtime closes its end
	if err != nil || string(told) != "ready\n" {
		t.Fatalf("read %q, %v from the ready pipe; want \"ready\\n\" then its end", told, err)
	}
	// Told ready: it serves now, without a retry.
	resp, err := http.Get("http://" + listen + "/hello/ada")
	if err != nil {
		t.Fatalf("told ready, but: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("told ready, but GET answered %d", resp.StatusCode)
	}
}
