package flow

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"testing"
)

// The benchmarks compare an HTTP-shaped map → reply flow with a hand-written
// Go transform doing the same work: decode the JSON request body, compute
// the answer from path parameter, query and body, encode the JSON answer.
// `go test -bench . ./internal/flow` prints both; their ns/op ratio is the
// engine's overhead.

const benchFlow = `flow: price
trigger:
  http:
    method: POST
    path: /orders/{customer}
steps:
  - map: |
      {customer: .params.customer, currency: (.query.currency // "EUR"),
       skus: [.body.items[].sku], total: ([.body.items[] | .price * .qty] | add)}
  - reply:
      status: 201
      headers: {location: '/orders/${ .body.customer }'}
      body: .body
`

var benchRequest = []byte(`{"items": [{"sku": "ABC-001", "qty": 2, "price": 9.99}, {"sku": "XYZ-042", "qty": 1, "price": 5}, {"sku": "QQQ-777", "qty": 3, "price": 1.25}]}`)

func benchMessage(b *testing.B) *Message {
	var body any
	if err := json.Unmarshal(benchRequest, &body); err != nil {
		b.Fatal(err)
	}
	return &Message{
		Body:    body,
		Headers: map[string]string{"content-type": "application/json", "x-request-id": "r-1"},
		Query:   map[string]string{"currency": "USD"},
		Params:  map[string]string{"customer": "acme"},
	}
}

// handWritten is what a developer would write in Go for benchFlow.
func handWritten(msg *Message) (*Response, error) {
	body, _ := msg.Body.(map[string]any)
	items, _ := body["items"].([]any)
	skus := make([]any, 0, len(items))
	total := 0.0
	for _, it := range items {
		m, _ := it.(map[string]any)
		skus = append(skus, m["sku"])
		price, _ := m["price"].(float64)
		qty, _ := m["qty"].(float64)
		total += price * qty
	}
	currency := msg.Query["currency"]
	if currency == "" {
		currency = "EUR"
	}
	customer := msg.Params["customer"]
	return &Response{
		Status:  201,
		Headers: map[string]string{"location": "/orders/" + customer},
		Body:    map[string]any{"customer": customer, "currency": currency, "skus": skus, "total": total},
	}, nil
}

// serve mimics the runtime's per-request work around the transform.
func serve(b *testing.B, run func(*Message) (*Response, error)) {
	var out bytes.Buffer
	msg := benchMessage(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var body any
		if err := json.Unmarshal(benchRequest, &body); err != nil {
			b.Fatal(err)
		}
		msg.Body = body
		resp, err := run(msg)
		if err != nil || resp.Status != 201 {
			b.Fatalf("%v %v", resp, err)
		}
		out.Reset()
		if err := json.NewEncoder(&out).Encode(resp.Body); err != nil {
			b.Fatal(err)
		}
	}
}

func benchProject(b *testing.B) *Flow {
	p, err := Load(context.Background(), project(map[string]string{"flows/price.yaml": benchFlow}), nil)
	if err != nil {
		b.Fatal(err)
	}
	return p.Flow("price")
}

func BenchmarkRunMapReply(b *testing.B) {
	f := benchProject(b)
	ctx := context.Background()
	serve(b, func(m *Message) (*Response, error) { return f.Run(ctx, m, nil) })
}

func BenchmarkHandWritten(b *testing.B) {
	serve(b, handWritten)
}

type discardTracer struct{}

func (discardTracer) Step(StepEvent) {}

// BenchmarkRunMapReplyTraced shows what a switched-on trace costs; the
// untraced run above builds no excerpt at all.
func BenchmarkRunMapReplyTraced(b *testing.B) {
	f := benchProject(b)
	ctx := context.Background()
	serve(b, func(m *Message) (*Response, error) { return f.Run(ctx, m, discardTracer{}) })
}

// TestBenchFlowMatchesHandWritten keeps the benchmark honest: both sides
// must compute the same answer.
func TestBenchFlowMatchesHandWritten(t *testing.T) {
	p, err := Load(context.Background(), project(map[string]string{"flows/price.yaml": benchFlow}), nil)
	if err != nil {
		t.Fatal(err)
	}
	var body any
	_ = json.Unmarshal(benchRequest, &body)
	msg := &Message{Body: body, Query: map[string]string{"currency": "USD"}, Params: map[string]string{"customer": "acme"}}
	got, err := p.Flow("price").Run(context.Background(), msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := handWritten(msg)
	g, w := got.Body.(map[string]any), want.Body.(map[string]any)
	if math.Abs(g["total"].(float64)-w["total"].(float64)) > 1e-9 {
		t.Errorf("total %v, want %v", g["total"], w["total"])
	}
	g["total"], w["total"] = 0, 0
	if jsonString(t, g) != jsonString(t, w) || got.Status != want.Status || got.Headers["location"] != want.Headers["location"] {
		t.Errorf("flow %v %v\nhand %v %v", got.Status, jsonString(t, got), want.Status, jsonString(t, want))
	}
}

// BenchmarkLoadOrders is the engine's share of a runtime's start-up: load
// and compile the orders example (every jq program, schema and module).
func BenchmarkLoadOrders(b *testing.B) {
	fsys := os.DirFS("../../examples/orders")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(context.Background(), fsys, nil); err != nil {
			b.Fatal(err)
		}
	}
}
