package connectors_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/sluice-dev/sluice/internal/connectors"
	"github.com/sluice-dev/sluice/internal/flow"
)

// nopConns answers publishes at once: the benchmark measures the flow
// engine's share of a message's cost, not a server's.
type nopConns struct{}

func (nopConns) Publish(_ context.Context, c *flow.Connection, m *flow.Outgoing) (map[string]any, error) {
	return map[string]any{"subject": m.Subject}, nil
}
func (nopConns) SQL(context.Context, *flow.Connection, bool, []flow.Statement) ([]map[string]any, error) {
	return nil, nil
}
func (nopConns) Redis(context.Context, *flow.Connection, *flow.RedisCommand) (any, error) {
	return nil, nil
}

// BenchmarkMessageFlow is bench/msgbench's flow (a NATS trigger's
// message through one map step and a publish) without a server or a
// runtime around it: what the flow engine costs per message.
func BenchmarkMessageFlow(b *testing.B) {
	fsys := fstest.MapFS{
		"sluice.yaml":  {Data: []byte("name: p\n")},
		"flows/a.yaml": {Data: []byte("flow: p\ntrigger:\n  nats: {connection: bus, subject: in, maxInFlight: 64}\nsteps:\n  - map: '{id: .body.id, total: (.body.qty * .body.price), t: .body.t}'\n  - publish: {connection: bus, subject: out}\n")},
	}
	p, err := flow.Load(context.Background(), fsys, &flow.Config{Connectors: nopConns{}, Policies: map[string]map[string]any{"bus": {"type": "nats", "url": "nats://x:4222"}}})
	if err != nil {
		b.Fatal(err)
	}
	f := p.Flow("p")
	data := []byte(`{"id":1,"qty":3,"price":9.99,"t":123456}`)
	b.ReportAllocs()
	for b.Loop() {
		body, _ := connectors.Body(data)
		if _, err := f.Run(context.Background(), &flow.Message{Body: body, Headers: map[string]string{}, Source: map[string]any{"subject": "in", "delivered": 1}}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
