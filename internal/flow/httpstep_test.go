package flow

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/secret"
)

// backend is a test server that answers from a script of statuses and
// records what it was sent.
type backend struct {
	mu       sync.Mutex
	statuses []int
	calls    int
	auth     []string
	bodies   []string
	ctypes   []string
	queries  []string
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	status := 200
	if b.calls < len(b.statuses) {
		status = b.statuses[b.calls]
	}
	b.calls++
	b.auth = append(b.auth, r.Header.Get("Authorization"))
	b.bodies = append(b.bodies, string(body))
	b.ctypes = append(b.ctypes, r.Header.Get("Content-Type"))
	b.queries = append(b.queries, r.URL.RawQuery)
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Backend", "yes")
	w.WriteHeader(status)
	// Echo the credentials back, as a careless peer might: the engine must
	// keep them out of errors and traces.
	io.WriteString(w, `{"path": "`+r.URL.Path+`", "echo": "`+r.Header.Get("Authorization")+`", "big": 12345678901234567890}`)
}

type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func TestHTTPStep(t *testing.T) {
	const pw = "p4ssw0rd-xyz"
	creds := map[string]Credential{
		"svc":   {User: "alice", Password: secret.New(pw)},
		"token": {User: "-", Password: secret.New("tok-abcdef")},
	}
	tests := []struct {
		name       string
		step       string
		statuses   []int
		wantCalls  int
		wantSleeps string
		wantBody   string // substring of the JSON answer
		wantErr    string // substring of the *Error message
		wantStatus int
		check      func(t *testing.T, b *backend)
	}{
		{
			name:      "basic auth, JSON body, query and response",
			step:      `{request: {method: POST, url: '${ .config.url }/orders/${ .params.id }', query: {q: 'a b'}, body: '{n: .body.n}'}, auth: svc}`,
			wantCalls: 1, wantSleeps: "[]",
			wantBody: `"status":200`,
			check: func(t *testing.T, b *backend) {
				if b.auth[0] != "Basic YWxpY2U6cDRzc3cwcmQteHl6" {
					t.Errorf("authorization %q", b.auth[0])
				}
				if b.bodies[0] != `{"n":5}` || b.ctypes[0] != "application/json" {
					t.Errorf("body %q type %q", b.bodies[0], b.ctypes[0])
				}
				if b.queries[0] != "q=a+b" {
					t.Errorf("query %q", b.queries[0])
				}
			},
		},
		{
			name:      "bearer auth and a text body",
			step:      `{request: {method: PUT, url: '${ .config.url }/x', body: '"plain"'}, auth: {bearer: token}}`,
			wantCalls: 1, wantSleeps: "[]", wantBody: `"path":"/x"`,
			check: func(t *testing.T, b *backend) {
				if b.auth[0] != "Bearer tok-abcdef" || b.bodies[0] != "plain" || !strings.HasPrefix(b.ctypes[0], "text/plain") {
					t.Errorf("auth %q body %q type %q", b.auth[0], b.bodies[0], b.ctypes[0])
				}
			},
		},
		{
			name:      "retries 5xx with exponential backoff",
			step:      `{request: {url: '${ .config.url }/r'}, retry: {attempts: 4, backoff: 100ms, exponential: true}}`,
			statuses:  []int{503, 500, 429, 200},
			wantCalls: 4, wantSleeps: "[100ms 200ms 400ms]", wantBody: `"status":200`,
		},
		{
			name:      "constant backoff",
			step:      `{request: {url: '${ .config.url }/r'}, retry: {attempts: 3, backoff: 50ms}}`,
			statuses:  []int{502, 502, 502},
			wantCalls: 3, wantSleeps: "[50ms 50ms]", wantBody: `"status":502`,
		},
		{
			name:      "4xx is final and not an error",
			step:      `{request: {url: '${ .config.url }/r'}, retry: {attempts: 3}}`,
			statuses:  []int{404},
			wantCalls: 1, wantSleeps: "[]", wantBody: `"status":404`,
		},
		{
			name:      "response headers and big numbers survive",
			step:      `{request: {url: '${ .config.url }/h'}}`,
			wantCalls: 1, wantSleeps: "[]", wantBody: `"x-backend":"yes"`,
			check: func(t *testing.T, b *backend) {},
		},
		{
			name:      "runtime url that is not absolute",
			step:      `{request: {url: '${ .body.n }'}}`,
			wantCalls: 0, wantSleeps: "[]",
			wantErr:    `url "5" is not an absolute http or https URL`,
			wantStatus: 500,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &backend{statuses: tt.statuses}
			srv := httptest.NewServer(b)
			defer srv.Close()
			sl := &sleeps{}
			cfg := &Config{Values: map[string]any{"url": srv.URL}, Credentials: creds, Sleep: sl.sleep}
			f := load(t, map[string]string{"flows/f.yaml": "flow: f\nsteps:\n  - http: " + tt.step + "\n  - map: .response\n"}, cfg, "f")
			resp, err := f.Run(context.Background(), &Message{Body: map[string]any{"n": 5}, Params: map[string]string{"id": "o1"}}, nil)
			if tt.wantErr != "" {
				var fe *Error
				if !errors.As(err, &fe) || !strings.Contains(fe.Message, tt.wantErr) || fe.Status != tt.wantStatus {
					t.Fatalf("got %v; want %d error containing %q", err, tt.wantStatus, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Run: %v", err)
			} else if got := jsonString(t, resp.Body); !strings.Contains(got, tt.wantBody) {
				t.Errorf("answer %s does not contain %s", got, tt.wantBody)
			} else if tt.name == "response headers and big numbers survive" && !strings.Contains(got, `"big":12345678901234567890`) {
				t.Errorf("big number lost precision: %s", got)
			}
			if b.calls != tt.wantCalls {
				t.Errorf("backend saw %d calls, want %d", b.calls, tt.wantCalls)
			}
			if got := formatDurations(sl.d); got != tt.wantSleeps {
				t.Errorf("sleeps %s, want %s", got, tt.wantSleeps)
			}
			if tt.check != nil {
				tt.check(t, b)
			}
		})
	}
}

func formatDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

func TestHTTPStepTLSTrust(t *testing.T) {
	srv := httptest.NewUnstartedServer(&backend{})
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake below is expected
	srv.StartTLS()
	defer srv.Close()
	flowFile := map[string]string{"flows/f.yaml": "flow: f\nsteps:\n  - http: {request: {url: '${ .config.url }/t'}}\n  - map: .response.status\n"}

	// Without the server's CA the handshake fails: a 502 naming the peer.
	f := load(t, flowFile, &Config{Values: map[string]any{"url": srv.URL}}, "f")
	_, err := f.Run(context.Background(), nil, nil)
	var fe *Error
	if !errors.As(err, &fe) || fe.Status != http.StatusBadGateway || !strings.Contains(fe.Message, "certificate") {
		t.Fatalf("untrusted server: got %v, want a 502 about the certificate", err)
	}
	var cause x509.UnknownAuthorityError
	if !errors.As(err, &cause) {
		t.Errorf("the cause is not kept for errors.As: %v", err)
	}

	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	f = load(t, flowFile, &Config{Values: map[string]any{"url": srv.URL}, RootCAs: pool}, "f")
	resp, err := f.Run(context.Background(), nil, nil)
	if err != nil || resp.Body != 200 {
		t.Fatalf("trusted server: got %v, %v", resp, err)
	}
}

func TestHTTPStepTimeoutAndUnreachable(t *testing.T) {
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(stall)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	tests := []struct {
		name       string
		url        string
		wantStatus int
		wantMsg    string
	}{
		{"peer too slow", srv.URL, http.StatusGatewayTimeout, "no answer within 10ms (after 2 attempts)"},
		{"peer gone", deadURL, http.StatusBadGateway, "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{Values: map[string]any{"url": tt.url}, Sleep: (&sleeps{}).sleep}
			f := load(t, map[string]string{"flows/f.yaml": "flow: f\nsteps:\n  - http: {request: {url: '${ .config.url }/s?token=abc'}, timeout: 10ms, retry: {attempts: 2}}\n"}, cfg, "f")
			_, err := f.Run(context.Background(), nil, nil)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want *Error", err)
			}
			if fe.Status != tt.wantStatus || !strings.Contains(fe.Message, tt.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", fe.Status, fe.Message, tt.wantStatus, tt.wantMsg)
			}
			if strings.Contains(fe.Message, "token=abc") {
				t.Errorf("error shows the query string: %q", fe.Message)
			}
		})
	}
}

// TestSecretsStayOutOfErrors: a peer echoing credentials into an error
// message must not carry them into the flow's error.
func TestSecretsStayOutOfErrors(t *testing.T) {
	const pw = "p4ssw0rd-xyz"
	srv := httptest.NewServer(&backend{statuses: []int{500}})
	defer srv.Close()
	cfg := &Config{
		Values:      map[string]any{"url": srv.URL},
		Credentials: map[string]Credential{"svc": {User: "alice", Password: secret.New(pw)}},
	}
	f := load(t, map[string]string{"flows/f.yaml": `flow: f
steps:
  - http: {request: {url: '${ .config.url }/x'}, auth: {bearer: svc}}
  - fail: {status: 502, message: 'backend said ${ .response.body.echo }'}
`}, cfg, "f")
	rec := &recorder{}
	_, err := f.Run(context.Background(), nil, rec)
	if err == nil || strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), secret.Redacted) {
		t.Fatalf("error %v: want the secret redacted", err)
	}
	for _, ev := range rec.events {
		if strings.Contains(jsonString(t, ev.Output), pw) {
			t.Errorf("trace of %s leaks the secret", ev.Step)
		}
	}
}
