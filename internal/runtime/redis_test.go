package runtime_test

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
)

// TestRedisStep: a flow counts and caches through the machine's Redis,
// with the connection from policyproject.
func TestRedisStep(t *testing.T) {
	b := make([]byte, 4)
	rand.Read(b)
	k := "sluice:rt:" + hex.EncodeToString(b)
	proj := writeProject(t, map[string]string{
		"sluice.yaml": "name: hits\n",
		"flows/hit.yaml": `flow: hit
trigger:
  http: {method: POST, path: '/hits/{page}'}
steps:
  - redis: {connection: cache, command: INCR, key: '` + k + `:${ .params.page }'}
  - set: {n: .response.value}
  - redis: {connection: cache, command: SET, key: '` + k + `:last', value: '{page: .params.page, n: .vars.n}', ttl: 1m}
  - redis: {connection: cache, command: GET, key: '` + k + `:last'}
  - reply: {body: '{n: .vars.n, last: .response.value}'}
`,
		"flows/clean.yaml": `flow: clean
trigger:
  http: {method: DELETE, path: '/hits/{page}'}
steps:
  - redis: {connection: cache, command: DEL, key: '` + k + `:${ .params.page }'}
  - redis: {connection: cache, command: DEL, key: '` + k + `:last'}
`,
	})
	conf := configDir(t, map[string]string{"policyproject/Connections/cache.yaml": "type: redis\nurl: redis://127.0.0.1:6379/0\n"})
	p := startRuntime(t, "--bar", buildBARInProcess(t, proj), "--config-dir", conf)
	defer do(t, "DELETE", p.url("/hits/home"), nil)
	for i, want := range []string{`{"last":{"n":1,"page":"home"},"n":1}`, `{"last":{"n":2,"page":"home"},"n":2}`} {
		a := do(t, "POST", p.url("/hits/home"), strings.NewReader(""))
		if a.status != 200 || string(a.body) != want {
			t.Fatalf("hit %d: %d %s", i, a.status, a.body)
		}
	}
}
