package runtime_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every log line a flow request causes — a log step's, the runtime's own
// "flow failed" — names the request's request_id (the caller's
// X-Request-Id, or a generated one) and, in a trace, its trace_id.
func TestFlowLogLinesCarryRequestAndTraceIDs(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"sluice.yaml": "name: logids\nversion: 0.0.1\n",
		"flows/noisy.yaml": `flow: noisy
trigger:
  http: {method: GET, path: '/noisy'}
steps:
  - log: {level: warn, message: 'noisy ran'}
  - fail: {status: 503, message: 'noisy gave up'}
`,
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := startRuntime(t, "--bar", buildBAR(t, dir), "--config-dir", configDir(t, nil))

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	if a := do(t, "GET", p.url("/noisy"), nil, "X-Request-Id", "req-traced", "traceparent", "00-"+traceID+"-b7ad6b7169203331-01"); a.status != 503 {
		t.Fatalf("noisy: %d %s", a.status, a.body)
	}
	plain := do(t, "GET", p.url("/noisy"), nil)
	generated := plain.header.Get("X-Request-Id")
	if plain.status != 503 || generated == "" {
		t.Fatalf("noisy without ids: %d, request id %q", plain.status, generated)
	}

	lines := func(requestID string) []map[string]any {
		var out []map[string]any
		sc := bufio.NewScanner(strings.NewReader(p.log.String()))
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["request_id"] == requestID {
				out = append(out, m)
			}
		}
		return out
	}
	msgs := func(ls []map[string]any) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, l := range ls {
			out[l["msg"].(string)] = l
		}
		return out
	}
	var got map[string]map[string]any
	eventually(t, "both lines of the traced request", func() bool {
		got = msgs(lines("req-traced"))
		return got["noisy ran"] != nil && got["flow failed"] != nil
	})
	for msg, l := range got {
		if l["trace_id"] != traceID {
			t.Errorf("line %q: trace_id %v, want the caller's %s", msg, l["trace_id"], traceID)
		}
	}
	eventually(t, "both lines of the request without ids", func() bool {
		got = msgs(lines(generated))
		return got["noisy ran"] != nil && got["flow failed"] != nil
	})
	for msg, l := range got {
		if _, ok := l["trace_id"]; ok {
			t.Errorf("line %q has trace_id %v though tracing is off and no traceparent came", msg, l["trace_id"])
		}
	}
	if strings.Contains(p.log.String(), `"requestId"`) {
		t.Errorf("a log line still names requestId rather than request_id:\n%s", p.log)
	}
}
