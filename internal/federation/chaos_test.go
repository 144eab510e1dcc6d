package federation

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/federation/exchange"
	"github.com/sluice-dev/sluice/internal/federation/federationtest"
)

// TestMangledControllerInputNeverBreaksTheAgent sends the agent hundreds
// of frames made by mangling valid commands (bytes flipped, cut, doubled,
// inserted), as a broken or hostile controller might. After each one the
// agent must still answer a HEALTH_CHECK — on the same connection, or on
// the next one when the frame made it close. The fuzz target of the
// exchange package holds the decoder; this holds what the agent does with
// whatever gets through it. The random source is seeded: a failure
// reproduces.
func TestMangledControllerInputNeverBreaksTheAgent(t *testing.T) {
	c := federationtest.NewController(t)
	clk := newFakeClock()
	startAgent(t, c, newMemProvider(3), clk, func(cfg *Config) { cfg.MaxFrameSize = 2048; cfg.IngestBatch = 2 })
	cc := c.Next(t)
	seeds := []string{
		`t:COMMAND;;et:HEALTH_CHECK;;e:{"id":"h","type":"HEALTH_CHECK","payload":{}}`,
		`t:COMMAND;;et:PRIMARY;;e:{"id":"p","type":"PRIMARY","payload":{"primary":true}}`,
		`t:COMMAND;;et:DISCOVER;;e:{"id":"d","type":"DISCOVER","payload":{}}`,
		`t:COMMAND;;et:START_INGEST;;e:{"id":"s","type":"START_INGEST","payload":{"ingestJobId":"j","apiIds":["a-api","b-api"]}}`,
		`t:COMMAND;;et:SUBSCRIBE;;e:{"id":"u","type":"SUBSCRIBE","payload":{"apiId":"a-api","subscription":{"graviteeSubscriptionId":"g","type":"API_KEY","metadata":{"planId":"a-api-gold"}}}}`,
		`t:COMMAND;;et:UNSUBSCRIBE;;e:{"id":"v","type":"UNSUBSCRIBE","payload":{"apiId":"a-api","subscription":{"graviteeSubscriptionId":"g"}}}`,
		`t:REPLY;;et:INGEST;;e:{"commandId":"x","type":"INGEST","commandStatus":"SUCCEEDED","payload":{}}`,
	}
	rng := rand.New(rand.NewPCG(13, 6))
	reconnects := 0
	for i := range 300 {
		frame := mangle(rng, []byte(seeds[rng.IntN(len(seeds))]))
		cc.Write(frame)
		probe := fmt.Sprintf("probe-%d", i)
		cmd, err := exchange.NewCommand(probe, exchange.TypeHealthCheck, struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := exchange.EncodeCommand(cmd)
		cc.Write(b)
		if next := answerProbe(t, c, cc, clk, probe); next != nil {
			cc = next
			reconnects++
		}
	}
	t.Logf("300 mangled frames, %d reconnects", reconnects)
}

// answerProbe reads until the agent answers the probe, acknowledging any
// ingest batch on the way. When the connection ends first, it lets the
// backoff pass, takes the next connection and probes it; it returns that
// connection (nil when the first one held).
func answerProbe(t *testing.T, c *federationtest.Controller, cc *federationtest.Conn, clk *fakeClock, probe string) *federationtest.Conn {
	t.Helper()
	deadline := time.After(federationtest.Guard)
	for {
		select {
		case <-deadline:
			t.Fatalf("no answer to %s", probe)
		case <-cc.Closed():
			clk.waitTimer(t, time.Second)
			clk.Advance(time.Second)
			next := c.Next(t)
			r := next.Reply(next.Send(exchange.TypeHealthCheck, struct{}{}))
			if r.CommandStatus != exchange.StatusSucceeded {
				t.Fatalf("after a reconnect: %+v", r)
			}
			return next
		case m, ok := <-cc.Messages():
			if !ok {
				continue // Closed() follows
			}
			if m.Command != nil && m.Command.Type == exchange.TypeIngest {
				cc.Ack(*m.Command)
			}
			if m.Reply != nil && m.Reply.CommandID == probe {
				if m.Reply.CommandStatus != exchange.StatusSucceeded {
					t.Fatalf("probe answered %+v", m.Reply)
				}
				return nil
			}
		}
	}
}

func mangle(rng *rand.Rand, b []byte) []byte {
	out := append([]byte(nil), b...)
	for range 1 + rng.IntN(4) {
		if len(out) == 0 {
			out = append(out, byte(rng.IntN(256)))
			continue
		}
		i := rng.IntN(len(out))
		switch rng.IntN(5) {
		case 0: // flip a byte
			out[i] = byte(rng.IntN(256))
		case 1: // cut
			out = out[:i]
		case 2: // insert a structural character
			out = append(out[:i], append([]byte{"{}[]\",:;"[rng.IntN(8)]}, out[i:]...)...)
		case 3: // repeat a stretch, which also makes frames oversized
			j := i + rng.IntN(len(out)-i)
			for range 1 + rng.IntN(200) {
				out = append(out, out[i:j+1]...)
			}
		case 4: // drop a byte
			out = append(out[:i], out[i+1:]...)
		}
	}
	return out
}
