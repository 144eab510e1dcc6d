package tracing_test

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// receiver is an OTLP/HTTP trace receiver inside the test.
type receiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	rc.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			rc.spans = append(rc.spans, ss.Spans...)
		}
	}
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Write(out)
}

func (rc *receiver) find(name string) *tracepb.Span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, s := range rc.spans {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestControlPlaneExportsSpansAndContinuesTraceparent(t *testing.T) {
	rc := &receiver{}
	col := httptest.NewServer(rc)
	defer col.Close()
	s := servertest.Start(t, servertest.Options{Env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + col.URL}})
	admin := s.Admin(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+admin.Token)
	req.Header.Set("X-IBM-Client-Id", admin.ClientID)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("whoami: %v %v", resp, err)
	}
	resp.Body.Close()
	// A refused exchange is marked on its span.
	servertest.Exchange(s.URL, s.Creds.ClientID, s.Creds.ClientSecret, s.Creds.InstanceID, "sk-wrong")

	waitFor(t, "the whoami span", func() bool { return rc.find("GET /api/v1/whoami") != nil })
	who := rc.find("GET /api/v1/whoami")
	if got := hex.EncodeToString(who.TraceId); got != traceID {
		t.Errorf("whoami span in trace %s, want the caller's %s", got, traceID)
	}
	if got := hex.EncodeToString(who.ParentSpanId); got != "00f067aa0ba902b7" {
		t.Errorf("whoami span's parent %s, want the caller's span", got)
	}
	if who.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("whoami span kind %v", who.Kind)
	}
	waitFor(t, "the token spans", func() bool { return rc.find("POST /api/v1/tokens") != nil })
	rc.mu.Lock()
	var issued, refused bool
	for _, sp := range rc.spans {
		if sp.Name != "POST /api/v1/tokens" {
			continue
		}
		for _, ev := range sp.Events {
			for _, a := range ev.Attributes {
				if a.Key == "sluice.token.grant" && a.Value.GetStringValue() == "api_key" {
					issued = issued || ev.Name == "token.issue"
					refused = refused || ev.Name == "token.refuse"
				}
			}
		}
	}
	all := fmt.Sprint(rc.spans)
	rc.mu.Unlock()
	if !issued || !refused {
		t.Errorf("token spans lack their issue (%v) and refuse (%v) events", issued, refused)
	}
	for _, secret := range []string{s.Creds.ClientSecret, s.Creds.APIKey, admin.Token} {
		if strings.Contains(all, secret) {
			t.Error("a span holds a secret")
		}
	}
}

// A collector that accepts connections and never answers: requests are
// answered all the same, and the spans that could not go are counted.
func TestUnreachableCollectorDropsSpansAndNeverFailsRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	maddr := servertest.FreeAddr(t)
	s := servertest.Start(t, servertest.Options{
		Args: []string{"--metrics-listen", maddr, "--rate-limit-client", "off", "--rate-limit-instance", "off", "--log-level", "warn"},
		Env:  []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + ln.Addr().String()},
	})
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 3000 {
		resp, err := client.Get(s.URL + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d with a stuck collector: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}
	waitFor(t, "dropped spans counted", func() bool {
		resp, err := http.Get("http://" + maddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "sluice_trace_spans_dropped_total ") && !strings.HasSuffix(line, " 0") {
				return true
			}
		}
		return false
	})
}
