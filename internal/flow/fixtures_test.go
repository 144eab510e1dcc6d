package flow

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRunTestsReportsFailures: the fixture runner must fail cases for
// every kind of mismatch, or `sluice flow test` would pass broken flows.
func TestRunTestsReportsFailures(t *testing.T) {
	flows := map[string]string{
		"flows/get.yaml": `flow: get
trigger:
  http:
    path: /items/{id}
steps:
  - http: {request: {url: 'https://b.example/items/${ .params.id }', headers: {x-k: v}}, auth: {bearer: tok}}
  - reply: {status: '.response.status', body: '.response.body', headers: {x-id: '${ .params.id }'}}
`,
		"flows/tick.yaml": "flow: tick\ntrigger:\n  schedule: {cron: '@hourly'}\nsteps: [{fail: {status: 503, message: down}}]\n",
	}
	const config = "config:\n  credentials: {tok: {user: t, password: secret-token}}\n"
	tests := []struct {
		name  string
		cases string
		want  []string // one substring per expected failure line
	}{
		{
			name: "passing case",
			cases: `
  - request: {path: /items/1}
    http:
      - request: {url: 'https://b.example/items/1', headers: {authorization: Bearer secret-token, x-k: v}}
        response: {status: 200, body: {id: 1}}
    expect: {status: 200, headers: {x-id: "1"}, body: {id: 1.0}}`,
		},
		{
			name: "wrong body, status and header",
			cases: `
  - request: {path: /items/1}
    http: [{request: {url: 'https://b.example/items/1'}, response: {status: 201, body: {id: 2}}}]
    expect: {status: 200, headers: {x-id: "2"}, body: {id: 1}}`,
			want: []string{"status: got 201, want 200", `header x-id: got "1", want "2"`, "body mismatch:\ngot  {\"id\":2}\nwant {\"id\":1}"},
		},
		{
			name: "unexpected and missing outbound requests",
			cases: `
  - request: {path: /items/1}
    http: [{request: {url: 'https://b.example/items/9'}}]
    expect: {status: 200}`,
			want: []string{"unexpected outbound request: GET https://b.example/items/1", "expected outbound request not made: GET https://b.example/items/9", "status: got 502"},
		},
		{
			name: "outbound header and body checks",
			cases: `
  - request: {path: /items/1}
    http: [{request: {url: 'https://b.example/items/1', headers: {x-k: w}, body: {a: 1}}, response: {status: 200}}]
    expect: {status: 200}`,
			want: []string{`header x-k: got "v", want "w"`, "body mismatch:\ngot  null\nwant {\"a\":1}"},
		},
		{
			name:  "no route",
			cases: "\n  - request: {method: POST, path: /items/1}\n",
			want:  []string{"no flow serves POST /items/1"},
		},
		{
			name:  "flow by name with an error",
			cases: "\n  - flow: tick\n    expect: {status: 503, error: up}\n",
			want:  []string{`error: got "down", want it to contain "up"`},
		},
		{
			name:  "expected error but the flow answered",
			cases: "\n  - request: {path: /items/1}\n    http: [{request: {url: 'https://b.example/items/1'}}]\n    expect: {error: boom}\n",
			want:  []string{`flow answered 200, want an error containing "boom"`},
		},
		{
			name:  "unknown flow",
			cases: "\n  - flow: nope\n",
			want:  []string{`no flow named "nope"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"tests/t.yaml": config + "cases:" + tt.cases + "\n"}
			for k, v := range flows {
				files[k] = v
			}
			var out bytes.Buffer
			results, err := RunTests(context.Background(), project(files), TestOptions{Out: &out})
			if err != nil {
				t.Fatal(err)
			}
			if len(results) != 1 {
				t.Fatalf("%d results, want 1", len(results))
			}
			r := results[0]
			if len(tt.want) == 0 {
				if !r.Passed() {
					t.Errorf("case failed: %v", r.Failures)
				}
				return
			}
			if r.Passed() {
				t.Fatal("case passed, want failures")
			}
			all := strings.Join(r.Failures, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("failures do not mention %q:\n%s", w, all)
				}
			}
			if !strings.Contains(out.String(), "--- FAIL: t/case-1") {
				t.Errorf("output has no FAIL line:\n%s", out.String())
			}
		})
	}
}

func TestRunTestsBadFixture(t *testing.T) {
	_, err := RunTests(context.Background(), project(map[string]string{
		"flows/a.yaml": okFlow,
		"tests/t.yaml": "cases:\n  - requst: {path: /ok}\n",
	}), TestOptions{})
	if err == nil || !strings.Contains(err.Error(), "tests/t.yaml: invalid test fixture") || !strings.Contains(err.Error(), "requst") {
		t.Fatalf("got %v, want an invalid fixture error naming the field", err)
	}
}

// TestRunTestsFakesConnectorSteps: publish, sql and redis steps are
// answered from a case's connectors fixtures, checked against what the
// steps send, and refusals follow the flow's error path.
func TestRunTestsFakesConnectorSteps(t *testing.T) {
	flows := map[string]string{
		"flows/place.yaml": `flow: place
trigger: {http: {method: POST, path: /orders}}
steps:
  - sql: {connection: shop, exec: 'INSERT INTO orders (id, total) VALUES (:id, :total)', params: {id: .body.id, total: .body.total}}
  - redis: {connection: cache, command: INCR, key: 'orders:${ .body.customer }'}
  - set: {n: .response.value}
  - publish: {connection: bus, subject: 'orders.${ .body.id }', headers: {nats-msg-id: '${ .body.id }'}, body: '{id: .body.id, n: .vars.n}', confirm: true}
  - reply: {status: 201, body: '{seq: .response.sequence, n: .vars.n}'}
`,
	}
	const config = `config:
  policies:
    shop: {type: postgres, url: 'postgres://db.example/shop'}
    cache: {type: redis, url: 'redis://cache.example:6379/0'}
    bus: {type: nats, url: 'nats://bus.example:4222'}
`
	tests := []struct {
		name  string
		cases string
		want  []string
	}{
		{
			name: "passing case",
			cases: `
  - request: {method: POST, path: /orders, body: {id: o-1, total: 9.5, customer: acme}}
    connectors:
      - sql: {connection: shop, args: [o-1, 9.5]}
        response: [{rowsAffected: 1}]
      - redis: {connection: cache, command: INCR, key: 'orders:acme'}
        response: 3
      - publish: {connection: bus, subject: orders.o-1, headers: {nats-msg-id: o-1}, body: {id: o-1, n: 3}}
        response: {subject: orders.o-1, stream: ORDERS, sequence: 7}
    expect: {status: 201, body: {seq: 7, n: 3}}`,
		},
		{
			name: "what the steps send is checked",
			cases: `
  - request: {method: POST, path: /orders, body: {id: o-1, total: 9.5, customer: acme}}
    connectors:
      - sql: {args: [o-2, 9.5]}
      - redis: {command: GET, key: 'orders:acme'}
      - publish: {subject: orders.o-2, body: {id: o-1}}
    expect: {status: 201}`,
			want: []string{"sql through \"shop\": args mismatch", `redis through "cache": command: got "INCR", want "GET"`,
				`publish through "bus": subject: got "orders.o-1", want "orders.o-2"`, "publish through \"bus\": body mismatch"},
		},
		{
			name: "a refusal and a step without a fixture",
			cases: `
  - request: {method: POST, path: /orders, body: {id: o-1, total: 9.5, customer: acme}}
    connectors:
      - sql: {connection: shop}
        error: 'duplicate key value violates unique constraint'
      - publish: {connection: bus}
    expect: {status: 502, error: duplicate key}`,
			want: []string{`expected publish step not run (connection "bus")`},
		},
		{
			name: "an unexpected step",
			cases: `
  - request: {method: POST, path: /orders, body: {id: o-1, total: 9.5, customer: acme}}
    expect: {status: 502}`,
			want: []string{`unexpected sql step (connection "shop"): no fixture left for it`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"tests/t.yaml": config + "cases:" + tt.cases + "\n"}
			for k, v := range flows {
				files[k] = v
			}
			results, err := RunTests(context.Background(), project(files), TestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r := results[0]
			if len(tt.want) == 0 {
				if !r.Passed() {
					t.Errorf("case failed: %v", r.Failures)
				}
				return
			}
			all := strings.Join(r.Failures, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("failures do not mention %q:\n%s", w, all)
				}
			}
		})
	}
}
