package flow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/secret"
)

// This file is the engine behind `sluice flow test`: each tests/*.yaml of a
// project lists cases (a request in, the expected answer out) and the
// outbound HTTP exchanges the flow should make, answered from the fixture
// instead of the network.

// TestOptions tunes RunTests.
type TestOptions struct {
	Out     io.Writer // progress and results, like `go test -v` (nil: discarded)
	Verbose bool      // also print passing cases and the flows' log output
	Run     string    // only cases whose "file/name" contains this
}

// TestResult is the outcome of one case.
type TestResult struct {
	File     string
	Name     string
	Flow     string
	Failures []string // empty when the case passed
	Duration time.Duration
}

// Passed reports whether the case passed.
func (r TestResult) Passed() bool { return len(r.Failures) == 0 }

type testFile struct {
	Config *testConfig `yaml:"config"`
	Cases  []testCase  `yaml:"cases"`
}

type testConfig struct {
	Values      map[string]any `yaml:"values"`
	Credentials map[string]struct {
		User     string `yaml:"user"`
		Password string `yaml:"password"`
	} `yaml:"credentials"`
	// Policies stand in for the policyproject configurations: the
	// connections publish, sql and redis steps and message-source
	// triggers name (nothing is connected to).
	Policies map[string]map[string]any `yaml:"policies"`
}

type testCase struct {
	Name    string            `yaml:"name"`
	Flow    string            `yaml:"flow"`
	Request *testRequest      `yaml:"request"`
	HTTP    []outboundFixture `yaml:"http"`
	// Connectors answer the flow's publish, sql and redis steps.
	Connectors []connectorFixture `yaml:"connectors"`
	Expect     testExpect         `yaml:"expect"`
}

type testRequest struct {
	Method  string            `yaml:"method"`
	Path    string            `yaml:"path"`
	Headers map[string]string `yaml:"headers"`
	Body    yaml.Node         `yaml:"body"`
	// Source stands in for a message-source trigger's .source.
	Source map[string]any `yaml:"source"`
}

type testExpect struct {
	Status  int               `yaml:"status"`
	Headers map[string]string `yaml:"headers"`
	Body    yaml.Node         `yaml:"body"`
	Error   string            `yaml:"error"`
}

type outboundFixture struct {
	Request struct {
		Method  string            `yaml:"method"`
		URL     string            `yaml:"url"`
		Headers map[string]string `yaml:"headers"`
		Body    yaml.Node         `yaml:"body"`
	} `yaml:"request"`
	Response struct {
		Status  int               `yaml:"status"`
		Headers map[string]string `yaml:"headers"`
		Body    yaml.Node         `yaml:"body"`
	} `yaml:"response"`
	Error string `yaml:"error"` // a transport error instead of a response
}

// RunTests runs every case of the project's tests/*.yaml and returns their
// results. The error is for a project or fixture that cannot be loaded;
// failing cases are reported in the results.
func RunTests(ctx context.Context, fsys fs.FS, opts TestOptions) ([]TestResult, error) {
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	files, err := fs.Glob(fsys, TestsDir+"/*.yaml")
	if err != nil {
		return nil, err
	}
	more, _ := fs.Glob(fsys, TestsDir+"/*.yml")
	files = append(files, more...)
	slices.Sort(files)
	if len(files) == 0 {
		// Still load the project, so `flow test` on a project without
		// fixtures at least validates it.
		if _, err := Load(ctx, fsys, nil); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("no test fixtures (want %s/*.yaml)", TestsDir)
	}
	var results []TestResult
	for _, file := range files {
		rs, err := runTestFile(ctx, fsys, file, opts, out)
		if err != nil {
			return results, err
		}
		results = append(results, rs...)
	}
	return results, nil
}

func runTestFile(ctx context.Context, fsys fs.FS, file string, opts TestOptions, out io.Writer) ([]TestResult, error) {
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, err
	}
	var tf testFile
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err == nil {
		if deep := yamlTooDeep(&doc); deep != nil {
			return nil, fmt.Errorf("%s:%d: invalid test fixture: nested more than %d deep", file, deep.Line, MaxDocumentDepth)
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		return nil, fmt.Errorf("%s: invalid test fixture: %w", file, err)
	}
	fake := &fakeTransport{}
	conns := &fakeConnectors{}
	logOut := io.Discard
	if opts.Verbose {
		logOut = out
	}
	cfg := &Config{
		Values:      map[string]any{},
		Credentials: map[string]Credential{},
		Transport:   fake,
		Connectors:  conns,
		Policies:    map[string]map[string]any{},
		Logger:      slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Sleep:       func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
	}
	if tf.Config != nil {
		if tf.Config.Values != nil {
			cfg.Values = tf.Config.Values
		}
		for name, c := range tf.Config.Credentials {
			cfg.Credentials[name] = Credential{User: c.User, Password: secret.New(c.Password)}
		}
		if tf.Config.Policies != nil {
			cfg.Policies = tf.Config.Policies
		}
	}
	p, err := Load(ctx, fsys, cfg)
	if err != nil {
		return nil, err
	}
	mux, matched := routeMux(p)

	var results []TestResult
	for i, tc := range tf.Cases {
		name := tc.Name
		if name == "" {
			name = fmt.Sprintf("case-%d", i+1)
		}
		id := strings.TrimSuffix(path.Base(file), path.Ext(file)) + "/" + name
		if opts.Run != "" && !strings.Contains(id, opts.Run) {
			continue
		}
		if opts.Verbose {
			fmt.Fprintf(out, "=== RUN   %s\n", id)
		}
		start := time.Now()
		r := TestResult{File: file, Name: name}
		r.Flow, r.Failures = runCase(ctx, p, mux, matched, fake, conns, tc)
		r.Duration = time.Since(start)
		switch {
		case !r.Passed():
			fmt.Fprintf(out, "--- FAIL: %s (%.3fs)\n", id, r.Duration.Seconds())
			for _, f := range r.Failures {
				fmt.Fprintf(out, "    %s\n", strings.ReplaceAll(f, "\n", "\n    "))
			}
		case opts.Verbose:
			fmt.Fprintf(out, "--- PASS: %s (%.3fs)\n", id, r.Duration.Seconds())
		}
		results = append(results, r)
	}
	return results, nil
}

// routeMux routes fixture requests the way the runtime does: a ServeMux of
// the flows' patterns, so path parameters come out the same.
func routeMux(p *Project) (*http.ServeMux, *routeMatch) {
	mux := http.NewServeMux()
	m := &routeMatch{}
	for _, f := range p.Flows {
		if f.HTTP == nil {
			continue
		}
		params := pathParams(f.HTTP.Path)
		mux.HandleFunc(f.HTTP.Pattern(), func(_ http.ResponseWriter, r *http.Request) {
			m.flow = f
			m.params = map[string]string{}
			for _, name := range params {
				m.params[name] = r.PathValue(name)
			}
		})
	}
	return mux, m
}

type routeMatch struct {
	flow   *Flow
	params map[string]string
}

func pathParams(tmpl string) []string {
	var out []string
	for _, seg := range strings.Split(tmpl, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.TrimSuffix(seg[1:len(seg)-1], "..."))
		}
	}
	return out
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header {
	if d.h == nil {
		d.h = http.Header{}
	}
	return d.h
}
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

func runCase(ctx context.Context, p *Project, mux *http.ServeMux, m *routeMatch, fake *fakeTransport, conns *fakeConnectors, tc testCase) (string, []string) {
	var fails []string
	failf := func(format string, args ...any) { fails = append(fails, fmt.Sprintf(format, args...)) }

	msg := &Message{Headers: map[string]string{}, Query: map[string]string{}, Params: map[string]string{}}
	var f *Flow
	if tc.Flow != "" {
		if f = p.Flow(tc.Flow); f == nil {
			failf("no flow named %q", tc.Flow)
			return tc.Flow, fails
		}
	}
	if rq := tc.Request; rq != nil {
		method := cmpOr(strings.ToUpper(rq.Method), "GET")
		if f != nil && f.HTTP != nil && rq.Method == "" {
			method = f.HTTP.Method
		}
		u, err := url.Parse(cmpOr(rq.Path, "/"))
		if err != nil {
			failf("invalid request path %q: %v", rq.Path, err)
			return tc.Flow, fails
		}
		for k, v := range u.Query() {
			msg.Query[k] = v[0]
		}
		for k, v := range rq.Headers {
			msg.Headers[strings.ToLower(k)] = v
		}
		if rq.Source != nil {
			src, err := normalizeJSON(rq.Source)
			if err != nil {
				failf("request source: %v", err)
				return tc.Flow, fails
			}
			msg.Source = src.(map[string]any)
		}
		if rq.Body.Kind != 0 {
			if msg.Body, err = nodeJSON(&rq.Body); err != nil {
				failf("request body: %v", err)
				return tc.Flow, fails
			}
		}
		if rq.Path != "" && (f == nil || f.HTTP != nil) {
			req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
			if err != nil {
				failf("invalid request: %v", err)
				return tc.Flow, fails
			}
			m.flow, m.params = nil, nil
			mux.ServeHTTP(&discardWriter{}, req)
			switch {
			case m.flow == nil:
				failf("no flow serves %s %s", method, u.Path)
				return tc.Flow, fails
			case f != nil && m.flow != f:
				failf("%s %s is served by flow %q, not %q", method, u.Path, m.flow.Name, f.Name)
				return tc.Flow, fails
			}
			f, msg.Params = m.flow, m.params
		}
	}
	if f == nil {
		failf("case names neither a flow nor a request path")
		return "", fails
	}

	if err := fake.start(tc.HTTP); err != nil {
		failf("%v", err)
		return f.Name, fails
	}
	if err := conns.start(tc.Connectors); err != nil {
		fake.finish()
		failf("%v", err)
		return f.Name, fails
	}
	resp, runErr := f.Run(ctx, msg, nil)
	for _, e := range append(fake.finish(), conns.finish()...) {
		failf("%s", e)
	}

	want := tc.Expect
	var fe *Error
	switch {
	case runErr != nil && errors.As(runErr, &fe):
		if want.Error == "" && want.Status == 0 {
			failf("flow failed: %d %s", fe.Status, fe.Message)
		}
		if want.Status != 0 && fe.Status != want.Status {
			failf("status: got %d (error %q), want %d", fe.Status, fe.Message, want.Status)
		}
		if want.Error != "" && !strings.Contains(fe.Message, want.Error) {
			failf("error: got %q, want it to contain %q", fe.Message, want.Error)
		}
		if want.Body.Kind != 0 {
			failf("flow failed (%d %s) but a body was expected", fe.Status, fe.Message)
		}
	case runErr != nil:
		failf("flow did not finish: %v", runErr)
	default:
		if want.Error != "" {
			failf("flow answered %d, want an error containing %q", resp.Status, want.Error)
		}
		if ws := cmpOr(want.Status, 200); resp.Status != ws {
			failf("status: got %d, want %d", resp.Status, ws)
		}
		for k, v := range want.Headers {
			if got := resp.Headers[strings.ToLower(k)]; got != v {
				failf("header %s: got %q, want %q", k, got, v)
			}
		}
		if want.Body.Kind != 0 {
			wb, err := nodeJSON(&want.Body)
			if err != nil {
				failf("expected body: %v", err)
			} else if diff := jsonDiff(resp.Body, wb); diff != "" {
				failf("body mismatch:\n%s", diff)
			}
		}
	}
	return f.Name, fails
}

func cmpOr[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// nodeJSON decodes a YAML fixture value into JSON-shaped data.
func nodeJSON(n *yaml.Node) (any, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return normalizeJSON(v)
}

// canonical turns a value into plain decoded JSON (float64 numbers), so
// 1, 1.0 and json.Number("1") compare equal.
func canonical(v any) (any, string) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Sprintf("(not JSON: %v)", err)
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out, string(b)
}

func jsonDiff(got, want any) string {
	g, gs := canonical(got)
	w, ws := canonical(want)
	if reflect.DeepEqual(g, w) {
		return ""
	}
	return fmt.Sprintf("got  %s\nwant %s", gs, ws)
}

// fakeTransport answers outbound requests from a case's fixtures. Cases
// run one after another, so it holds one case's fixtures at a time.
type fakeTransport struct {
	mu       sync.Mutex
	fixtures []outboundFixture
	used     []bool
	problems []string
}

var _ http.RoundTripper = (*fakeTransport)(nil)

func (t *fakeTransport) start(fx []outboundFixture) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, f := range fx {
		if f.Request.URL == "" {
			return fmt.Errorf("http fixture %d has no request url", i+1)
		}
		if f.Error == "" && f.Response.Status == 0 {
			fx[i].Response.Status = 200
		}
	}
	t.fixtures, t.used, t.problems = fx, make([]bool, len(fx)), nil
	return nil
}

func (t *fakeTransport) finish() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.problems
	for i, f := range t.fixtures {
		if !t.used[i] {
			p = append(p, fmt.Sprintf("expected outbound request not made: %s %s", cmpOr(strings.ToUpper(f.Request.Method), "GET"), f.Request.URL))
		}
	}
	t.fixtures, t.used, t.problems = nil, nil, nil
	return p
}

// RoundTrip serves the first unused fixture with the request's method and
// URL, after checking the headers and body the fixture expects.
func (t *fakeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, f := range t.fixtures {
		if t.used[i] || cmpOr(strings.ToUpper(f.Request.Method), "GET") != req.Method || f.Request.URL != req.URL.String() {
			continue
		}
		t.used[i] = true
		for k, v := range f.Request.Headers {
			if got := req.Header.Get(k); got != v {
				t.problems = append(t.problems, fmt.Sprintf("outbound %s %s: header %s: got %q, want %q", req.Method, req.URL, k, got, v))
			}
		}
		if f.Request.Body.Kind != 0 {
			want, err := nodeJSON(&f.Request.Body)
			var got any
			if len(body) > 0 {
				var derr error
				if got, derr = decodeJSON(body); derr != nil {
					got = string(body)
				}
			}
			if err != nil {
				t.problems = append(t.problems, fmt.Sprintf("outbound %s %s: fixture body: %v", req.Method, req.URL, err))
			} else if diff := jsonDiff(got, want); diff != "" {
				t.problems = append(t.problems, fmt.Sprintf("outbound %s %s: body mismatch:\n%s", req.Method, req.URL, diff))
			}
		}
		if f.Error != "" {
			return nil, errors.New(f.Error)
		}
		return fixtureResponse(req, f)
	}
	t.problems = append(t.problems, fmt.Sprintf("unexpected outbound request: %s %s", req.Method, req.URL))
	return nil, fmt.Errorf("no fixture for %s %s", req.Method, req.URL)
}

func fixtureResponse(req *http.Request, f outboundFixture) (*http.Response, error) {
	h := http.Header{}
	for k, v := range f.Response.Headers {
		h.Set(k, v)
	}
	var data []byte
	if f.Response.Body.Kind != 0 {
		v, err := nodeJSON(&f.Response.Body)
		if err != nil {
			return nil, err
		}
		if s, ok := v.(string); ok && h.Get("Content-Type") != "" && !strings.Contains(h.Get("Content-Type"), "json") {
			data = []byte(s)
		} else {
			data, _ = json.Marshal(v)
			if h.Get("Content-Type") == "" {
				h.Set("Content-Type", "application/json")
			}
		}
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", f.Response.Status, http.StatusText(f.Response.Status)),
		StatusCode:    f.Response.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(data)),
		ContentLength: int64(len(data)),
		Request:       req,
	}, nil
}
