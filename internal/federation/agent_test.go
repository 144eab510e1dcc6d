package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice/internal/federation/exchange"
	"github.com/sluice-dev/sluice/internal/federation/federationtest"
	"github.com/sluice-dev/sluice/internal/secret"
)

func secretOf(s string) secret.Value { return secret.New(s) }

// syncBuffer collects the agent's log lines for the canary checks.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var logs sync.Map // *testing.T → *syncBuffer

func testLogger(t *testing.T) *slog.Logger {
	b := &syncBuffer{}
	logs.Store(t, b)
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func logOf(t *testing.T) string {
	b, _ := logs.Load(t)
	return b.(*syncBuffer).String()
}

// waitState waits for the agent's state to satisfy ok: the agent records
// a connection just after the controller's HELLO reply reaches it.
func waitState(t *testing.T, a *Agent, ok func(State) bool) {
	t.Helper()
	deadline := time.Now().Add(federationtest.Guard)
	for !ok(a.State()) {
		if time.Now().After(deadline) {
			t.Fatalf("state %+v", a.State())
		}
		time.Sleep(time.Millisecond)
	}
}

func payload[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := exchange.DecodePayload(raw, &v); err != nil {
		t.Fatalf("payload %s: %v", raw, err)
	}
	return v
}

func succeeded(t *testing.T, r exchange.Reply) {
	t.Helper()
	if r.CommandStatus != exchange.StatusSucceeded {
		t.Fatalf("reply %s %s: %s, want SUCCEEDED", r.Type, r.CommandStatus, r.ErrorDetails)
	}
}

func failed(t *testing.T, r exchange.Reply, typ, details string) {
	t.Helper()
	if r.CommandStatus != exchange.StatusError || r.Type != typ || !strings.Contains(r.ErrorDetails, details) {
		t.Fatalf("reply %s %s %q, want %s ERROR containing %q", r.Type, r.CommandStatus, r.ErrorDetails, typ, details)
	}
}

func TestHelloFirstWithTokenProtocolIntegrationAndProvider(t *testing.T) {
	c := federationtest.NewController(t)
	a, _ := startAgent(t, c, newMemProvider(1), newFakeClock(), nil)
	cc := c.Next(t)
	if got := cc.Header.Get("Authorization"); got != "bearer "+c.Token {
		t.Fatalf("Authorization %q", got)
	}
	if got := cc.Header.Get(ProtocolHeader); got != "v1" {
		t.Fatalf("%s %q", ProtocolHeader, got)
	}
	hp := payload[exchange.HelloPayload](t, cc.Hello.Payload)
	if hp.TargetID != "int-42" || hp.Provider != "ibm-api-connect" || cc.Hello.ID == "" {
		t.Fatalf("HELLO %+v %+v", cc.Hello, hp)
	}
	// State follows the HELLO reply.
	id := cc.Send(exchange.TypeHealthCheck, struct{}{})
	succeeded(t, cc.Reply(id))
	waitState(t, a, func(s State) bool { return s.Connected && s.Connections == 1 })
}

func TestTheWholeCommandSet(t *testing.T) {
	c := federationtest.NewController(t)
	p := newMemProvider(3)
	a, _ := startAgent(t, c, p, newFakeClock(), func(cfg *Config) { cfg.IngestBatch = 2 })
	cc := c.Next(t)

	t.Run("HEALTH_CHECK", func(t *testing.T) {
		id := cc.Send(exchange.TypeHealthCheck, struct{}{})
		r := cc.Reply(id)
		succeeded(t, r)
		if h := payload[exchange.HealthCheckReplyPayload](t, r.Payload); !h.Healthy {
			t.Fatalf("%+v", h)
		}
		p.setUnhealthy(errDown)
		r = cc.Reply(cc.Send(exchange.TypeHealthCheck, struct{}{}))
		succeeded(t, r)
		if h := payload[exchange.HealthCheckReplyPayload](t, r.Payload); h.Healthy || h.Detail != errDown.Error() {
			t.Fatalf("%+v", h)
		}
		p.setUnhealthy(nil)
	})

	t.Run("PRIMARY", func(t *testing.T) {
		r := cc.Reply(cc.Send(exchange.TypePrimary, exchange.PrimaryPayload{Primary: true}))
		succeeded(t, r)
		if string(r.Payload) != "{}" {
			t.Fatalf("payload %s", r.Payload)
		}
		if !a.State().Primary {
			t.Fatal("not primary after PRIMARY true")
		}
		succeeded(t, cc.Reply(cc.Send(exchange.TypePrimary, exchange.PrimaryPayload{Primary: false})))
		if a.State().Primary {
			t.Fatal("primary after PRIMARY false")
		}
	})

	t.Run("DISCOVER", func(t *testing.T) {
		r := cc.Reply(cc.Send(exchange.TypeDiscover, struct{}{}))
		succeeded(t, r)
		d := payload[exchange.DiscoverReplyPayload](t, r.Payload)
		if d.IsPartialDiscovery || len(d.APIs) != 3 {
			t.Fatalf("%+v", d)
		}
		api := d.APIs[0]
		if api.ID != "a-api" || api.UniqueID != "a-api" || api.Name != "API a-api" || api.Version != "1.0" || api.Type != exchange.APITypeProxy ||
			api.ConnectionDetails["url"] != "http://127.0.0.1:7800" {
			t.Fatalf("api %+v", api)
		}
		if len(api.Pages) != 1 || api.Pages[0].PageType != exchange.PageSwagger || !strings.Contains(api.Pages[0].Content, `"openapi":"3.0.3"`) ||
			api.Pages[0].Filename != "a-api.json" {
			t.Fatalf("pages %+v", api.Pages)
		}
		// The open plan has nothing to subscribe to and is not federated.
		if len(api.Plans) != 2 || api.Plans[0].PlanSecurityType != exchange.PlanAPIKey || api.Plans[1].PlanSecurityType != exchange.PlanOAuth2 ||
			api.Plans[0].Characteristics[0] != "100/1m" {
			t.Fatalf("plans %+v", api.Plans)
		}
		if len(api.Metadata) != 2 || api.Metadata[1].Format != exchange.FormatURL {
			t.Fatalf("metadata %+v", api.Metadata)
		}
	})

	t.Run("DISCOVER failing", func(t *testing.T) {
		p.mu.Lock()
		p.listErr = errDown
		p.mu.Unlock()
		failed(t, cc.Reply(cc.Send(exchange.TypeDiscover, struct{}{})), exchange.TypeDiscover, errDown.Error())
		p.mu.Lock()
		p.listErr = nil
		p.mu.Unlock()
	})

	t.Run("START_INGEST", func(t *testing.T) {
		id := cc.Send(exchange.TypeStartIngest, exchange.StartIngestPayload{IngestJobID: "job-1"})
		r := cc.Reply(id)
		succeeded(t, r)
		if s := payload[exchange.StartIngestReplyPayload](t, r.Payload); s.IngestJobID != "job-1" || s.Total != 3 {
			t.Fatalf("%+v", s)
		}
		b1 := cc.Command(exchange.TypeIngest)
		p1 := payload[exchange.IngestPayload](t, b1.Payload)
		if p1.IngestJobID != "job-1" || len(p1.APIs) != 2 || p1.Done {
			t.Fatalf("first batch %+v", p1)
		}
		cc.Ack(b1)
		b2 := cc.Command(exchange.TypeIngest)
		p2 := payload[exchange.IngestPayload](t, b2.Payload)
		if len(p2.APIs) != 1 || !p2.Done || p2.APIs[0].ID != "c-api" || len(p2.APIs[0].Pages) != 1 {
			t.Fatalf("last batch %+v", p2)
		}
		cc.Ack(b2)
	})

	t.Run("START_INGEST of chosen APIs", func(t *testing.T) {
		r := cc.Reply(cc.Send(exchange.TypeStartIngest, exchange.StartIngestPayload{IngestJobID: "job-2", APIIDs: []string{"b-api"}}))
		succeeded(t, r)
		if s := payload[exchange.StartIngestReplyPayload](t, r.Payload); s.Total != 1 {
			t.Fatalf("%+v", s)
		}
		b := cc.Command(exchange.TypeIngest)
		if pl := payload[exchange.IngestPayload](t, b.Payload); len(pl.APIs) != 1 || pl.APIs[0].ID != "b-api" || !pl.Done {
			t.Fatalf("%+v", pl)
		}
		cc.Ack(b)
	})

	t.Run("START_INGEST of an unknown API", func(t *testing.T) {
		r := cc.Reply(cc.Send(exchange.TypeStartIngest, exchange.StartIngestPayload{IngestJobID: "job-3", APIIDs: []string{"b-api", "gone"}}))
		failed(t, r, exchange.TypeStartIngest, `unknown API ids: "gone"`)
		failed(t, cc.Reply(cc.Send(exchange.TypeStartIngest, struct{}{})), exchange.TypeStartIngest, "no ingestJobId")
	})

	sub := exchange.SubscribePayload{APIID: "a-api", Subscription: exchange.Subscription{GraviteeSubscriptionID: "gs-1",
		GraviteeApplicationID: "ga-1", GraviteeApplicationName: "Shop", Type: exchange.SubscriptionAPIKey,
		Metadata: map[string]string{exchange.MetadataPlanID: "a-api-gold"}}}

	t.Run("SUBSCRIBE", func(t *testing.T) {
		r := cc.Reply(cc.Send(exchange.TypeSubscribe, sub))
		succeeded(t, r)
		res := payload[exchange.SubscribeReplyPayload](t, r.Payload).Subscription
		if res.GraviteeSubscriptionID != "gs-1" || res.APIKey != "cid-gs-1" || res.Metadata["clientId"] != "cid-gs-1" || res.Metadata["clientSecret"] != "slcs_gs-1" {
			t.Fatalf("%+v", res)
		}
		got := p.subs["gs-1"]
		want := Subscription{APIID: "a-api", PlanID: "a-api-gold", SubscriptionID: "gs-1", ApplicationID: "ga-1", ApplicationName: "Shop", Type: exchange.SubscriptionAPIKey}
		if got != want {
			t.Fatalf("provider got %+v, want %+v", got, want)
		}
		// OAuth subscriptions get the credential but no API key.
		o := sub
		o.Subscription.GraviteeSubscriptionID, o.Subscription.Type = "gs-2", exchange.SubscriptionOAuth
		r = cc.Reply(cc.Send(exchange.TypeSubscribe, o))
		succeeded(t, r)
		if res := payload[exchange.SubscribeReplyPayload](t, r.Payload).Subscription; res.APIKey != "" || res.Metadata["clientSecret"] != "slcs_gs-2" {
			t.Fatalf("%+v", res)
		}
	})

	t.Run("SUBSCRIBE refused", func(t *testing.T) {
		bad := sub
		bad.Subscription.GraviteeSubscriptionID = ""
		failed(t, cc.Reply(cc.Send(exchange.TypeSubscribe, bad)), exchange.TypeSubscribe, "no subscription.graviteeSubscriptionId")
		bad = sub
		bad.APIID = ""
		failed(t, cc.Reply(cc.Send(exchange.TypeSubscribe, bad)), exchange.TypeSubscribe, "no apiId")
		bad = sub
		bad.Subscription.Type = "JWT"
		failed(t, cc.Reply(cc.Send(exchange.TypeSubscribe, bad)), exchange.TypeSubscribe, `subscription type "JWT" is not supported`)
	})

	t.Run("UNSUBSCRIBE", func(t *testing.T) {
		r := cc.Reply(cc.Send(exchange.TypeUnsubscribe, sub))
		succeeded(t, r)
		if _, ok := p.subs["gs-1"]; ok {
			t.Fatal("subscription still there")
		}
	})

	t.Run("UNKNOWN", func(t *testing.T) {
		r := cc.Reply(cc.Send("DELETE_EVERYTHING", struct{}{}))
		failed(t, r, exchange.TypeUnknown, `unknown command type "DELETE_EVERYTHING"`)
		failed(t, cc.Reply(cc.Send(exchange.TypeIngest, struct{}{})), exchange.TypeIngest, "sent by the agent")
		failed(t, cc.Reply(cc.Send(exchange.TypeHello, struct{}{})), exchange.TypeHello, "sent by the agent")
	})

	// The client secrets went to the controller only, never to the log.
	if l := logOf(t); strings.Contains(l, "slcs_gs-1") || strings.Contains(l, "slcs_gs-2") || strings.Contains(l, c.Token) {
		t.Fatalf("a secret reached the log:\n%s", l)
	}
}

func TestDroppedConnectionMidIngestReconnectsAndIngestRestarts(t *testing.T) {
	c := federationtest.NewController(t)
	clk := newFakeClock()
	a, _ := startAgent(t, c, newMemProvider(3), clk, func(cfg *Config) { cfg.IngestBatch = 1 })
	cc := c.Next(t)
	succeeded(t, cc.Reply(cc.Send(exchange.TypeStartIngest, exchange.StartIngestPayload{IngestJobID: "job-1"})))
	first := cc.Command(exchange.TypeIngest)
	if pl := payload[exchange.IngestPayload](t, first.Payload); len(pl.APIs) != 1 || pl.Done {
		t.Fatalf("%+v", pl)
	}
	// The connection drops before the controller acknowledges the batch.
	_ = cc.WS.CloseNow()
	// The agent waits out its first backoff (1 s), then comes back.
	clk.waitTimer(t, time.Second)
	clk.Advance(time.Second)
	cc2 := c.Next(t)
	waitState(t, a, func(s State) bool {
		return s.Connected && s.Connections == 2 && strings.Contains(s.LastError, "connection lost")
	})
	// The controller restarts the job; all batches arrive, the last one done.
	succeeded(t, cc2.Reply(cc2.Send(exchange.TypeStartIngest, exchange.StartIngestPayload{IngestJobID: "job-2"})))
	var ids []string
	for {
		b := cc2.Command(exchange.TypeIngest)
		pl := payload[exchange.IngestPayload](t, b.Payload)
		if pl.IngestJobID != "job-2" {
			t.Fatalf("batch of %s", pl.IngestJobID)
		}
		for _, api := range pl.APIs {
			ids = append(ids, api.ID)
		}
		cc2.Ack(b)
		if pl.Done {
			break
		}
	}
	if strings.Join(ids, ",") != "a-api,b-api,c-api" {
		t.Fatalf("ingested %v", ids)
	}
}

func TestControllerRefusingABatchEndsTheJob(t *testing.T) {
	c := federationtest.NewController(t)
	_, _ = startAgent(t, c, newMemProvider(2), newFakeClock(), func(cfg *Config) { cfg.IngestBatch = 1 })
	cc := c.Next(t)
	succeeded(t, cc.Reply(cc.Send(exchange.TypeStartIngest, exchange.StartIngestPayload{IngestJobID: "job-1"})))
	b := cc.Command(exchange.TypeIngest)
	cc.Write(federationtest.MustReply(t, exchange.Failed(b.ID, exchange.TypeIngest, "ingest job cancelled")))
	// No second batch: the next thing the agent sends is the reply to this.
	id := cc.Send(exchange.TypeHealthCheck, struct{}{})
	succeeded(t, cc.Reply(id))
}

func TestGoodByeWithReconnect(t *testing.T) {
	c := federationtest.NewController(t)
	clk := newFakeClock()
	a, done := startAgent(t, c, newMemProvider(1), clk, nil)
	cc := c.Next(t)
	cc.Send(exchange.TypeGoodBye, exchange.GoodByePayload{TargetID: "int-42", Reconnect: true})
	if code := cc.ClosedWith(); code != websocket.StatusTryAgainLater {
		t.Fatalf("closed with %d, want 1013", code)
	}
	clk.waitTimer(t, time.Second)
	clk.Advance(time.Second)
	cc2 := c.Next(t)
	succeeded(t, cc2.Reply(cc2.Send(exchange.TypeHealthCheck, struct{}{})))
	waitState(t, a, func(s State) bool { return s.Connected && s.Connections == 2 })
	// GOOD_BYE without reconnect ends the agent.
	cc2.Send(exchange.TypeGoodBye, exchange.GoodByePayload{TargetID: "int-42", Reconnect: false})
	if code := cc2.ClosedWith(); code != websocket.StatusNormalClosure {
		t.Fatalf("closed with %d, want 1000", code)
	}
	if err := waitDone(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if c.Upgrades.Load() != 2 {
		t.Fatalf("%d upgrades", c.Upgrades.Load())
	}
}

func TestMalformedFramesFromTheController(t *testing.T) {
	c := federationtest.NewController(t)
	clk := newFakeClock()
	a, _ := startAgent(t, c, newMemProvider(1), clk, func(cfg *Config) { cfg.MaxFrameSize = 4096 })
	cc := c.Next(t)

	// A command it can name gets an ERROR, and the connection goes on.
	cc.Write([]byte(`t:COMMAND;;et:SUBSCRIBE;;e:{"id":"m1","type":"SUBSCRIBE","payload":{"apiId":`))
	failed(t, cc.Reply("m1"), exchange.TypeSubscribe, "SUBSCRIBE command does not decode")
	cc.Write([]byte(`t:COMMAND;;et:SUBSCRIBE;;e:{"id":"m2","type":"SUBSCRIBE","payload":{"apiId":7}}`))
	failed(t, cc.Reply("m2"), exchange.TypeSubscribe, "payload does not decode")
	cc.Write([]byte(`t:COMMAND;;et:WHATEVER;;e:{"id":"m3","type":"DISCOVER"}`))
	failed(t, cc.Reply("m3"), exchange.TypeUnknown, `unknown command type "WHATEVER"`)

	// So does a GOOD_BYE it cannot read: the connection stays.
	cc.Write([]byte(`t:COMMAND;;et:GOOD_BYE;;e:{"id":"m4","type":"GOOD_BYE","payload":{"reconnect":"soon"}}`))
	failed(t, cc.Reply("m4"), exchange.TypeGoodBye, "payload does not decode")
	succeeded(t, cc.Reply(cc.Send(exchange.TypeHealthCheck, struct{}{})))

	// An oversized command is refused by name, without being decoded.
	big := `t:COMMAND;;et:SUBSCRIBE;;e:{"id":"big","type":"SUBSCRIBE","payload":{"apiId":"` + strings.Repeat("x", 10000) + `"}}`
	cc.Write([]byte(big))
	failed(t, cc.Reply("big"), exchange.TypeSubscribe, "over the limit of 4096 bytes")
	succeeded(t, cc.Reply(cc.Send(exchange.TypeHealthCheck, struct{}{})))

	// A reply to nothing is ignored.
	cc.Write(federationtest.MustReply(t, exchange.Failed("nobody", exchange.TypeIngest, "x")))
	succeeded(t, cc.Reply(cc.Send(exchange.TypeHealthCheck, struct{}{})))

	// A frame that cannot be read at all ends the connection with 1002,
	// as the controller does; the agent comes back.
	cc.Write([]byte("garbage without a kind"))
	if code := cc.ClosedWith(); code != websocket.StatusProtocolError {
		t.Fatalf("closed with %d, want 1002", code)
	}
	clk.waitTimer(t, time.Second)
	clk.Advance(time.Second)
	cc2 := c.Next(t)

	// A text frame is not part of the protocol: 1003, and back again.
	if err := cc2.WS.Write(context.Background(), websocket.MessageText, []byte(`t:COMMAND;;et:HEALTH_CHECK;;e:{"id":"t1"}`)); err != nil {
		t.Fatal(err)
	}
	if code := cc2.ClosedWith(); code != websocket.StatusUnsupportedData {
		t.Fatalf("closed with %d, want 1003", code)
	}
	// The second drop in a row backs off longer only if no HELLO
	// succeeded in between; here one did, so it is 1 s again.
	clk.waitTimer(t, time.Second)
	clk.Advance(time.Second)
	cc3 := c.Next(t)
	succeeded(t, cc3.Reply(cc3.Send(exchange.TypeHealthCheck, struct{}{})))
	waitState(t, a, func(s State) bool {
		return s.Connected && s.Connections == 3 && strings.Contains(s.LastError, "text frame")
	})
}

func TestHelloRefusedStopsTheAgent(t *testing.T) {
	c := federationtest.NewController(t)
	c.RefuseHello = "integration int-42 is not an ibm-api-connect integration of this organization"
	_, done := startAgent(t, c, newMemProvider(1), newFakeClock(), nil)
	err := waitDone(t, done)
	if !errors.Is(err, ErrHelloRefused) || !strings.Contains(err.Error(), c.RefuseHello) {
		t.Fatalf("Run: %v", err)
	}
	if c.Upgrades.Load() != 1 {
		t.Fatalf("%d upgrades: HELLO refused must not be retried", c.Upgrades.Load())
	}
}

func TestWrongTokenBacksOffExponentially(t *testing.T) {
	c := federationtest.NewController(t)
	clk := newFakeClock()
	good := c.Token
	c.Token = "another-token" // the agent's token is refused
	a, _ := startAgent(t, c, newMemProvider(1), clk, func(cfg *Config) { cfg.Token = secretOf(good) })
	for _, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		clk.waitTimer(t, d)
		clk.Advance(d)
	}
	if n := c.Unauthorized.Load(); n < 7 {
		t.Fatalf("%d attempts", n)
	}
	if s := a.State(); !strings.Contains(s.LastError, "refused the token (401)") || strings.Contains(s.LastError, good) {
		t.Fatalf("state %+v", s)
	}
	if strings.Contains(logOf(t), good) {
		t.Fatal("the token reached the log")
	}
}

func TestPingsAndDeadConnection(t *testing.T) {
	c := federationtest.NewController(t)
	clk := newFakeClock()
	a, _ := startAgent(t, c, newMemProvider(1), clk, nil)
	cc := c.Next(t)
	succeeded(t, cc.Reply(cc.Send(exchange.TypeHealthCheck, struct{}{})))
	waitPings := func(n int32) {
		t.Helper()
		deadline := time.Now().Add(federationtest.Guard)
		for c.Pings.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d pings, want %d", c.Pings.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	clk.waitTimer(t, PingInterval)
	if c.Pings.Load() != 0 {
		t.Fatal("pinged before 5 s")
	}
	clk.Advance(PingInterval)
	waitPings(1)
	clk.waitTimer(t, PingInterval)
	clk.Advance(PingInterval)
	waitPings(2)
	// The controller stops answering: after two silent intervals the agent
	// gives the connection up (1001) and reconnects.
	c.WithholdPongs.Store(true)
	ticks := 0
	for {
		closed, code := closedOrTimer(t, cc, clk, PingInterval)
		if closed {
			if code != websocket.StatusGoingAway {
				t.Fatalf("closed with %d, want 1001", code)
			}
			break
		}
		clk.Advance(PingInterval)
		ticks++
	}
	// Pings in flight when the pongs stopped may make it one interval
	// fewer than three; never less than the two silent ones.
	if ticks < missedPings || ticks > missedPings+1 {
		t.Fatalf("gave up after %d silent intervals, want %d", ticks, missedPings+1)
	}
	c.WithholdPongs.Store(false)
	clk.waitTimer(t, time.Second)
	clk.Advance(time.Second)
	c.Next(t)
	waitState(t, a, func(s State) bool {
		return s.Connected && s.Connections == 2 && strings.Contains(s.LastError, "did not answer pings")
	})
}

func TestConfigRefusals(t *testing.T) {
	p := newMemProvider(0)
	ok := Config{Endpoint: "https://apim.example/integration-controller", Token: secretOf("t"), IntegrationID: "i", Provider: p}
	cases := map[string]func(*Config){
		"no provider":       func(c *Config) { c.Provider = nil },
		"integration id":    func(c *Config) { c.IntegrationID = " " },
		"token is empty":    func(c *Config) { c.Token = secret.Value{} },
		"not an absolute":   func(c *Config) { c.Endpoint = "apim.example" },
		`scheme "ftp"`:      func(c *Config) { c.Endpoint = "ftp://apim.example/x" },
		"carry credentials": func(c *Config) { c.Endpoint = "https://u:p@apim.example/x" },
	}
	for want, mut := range cases {
		cfg := ok
		mut(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	for in, want := range map[string]string{
		"https://apim.example/integration-controller":                   "wss://apim.example/integration-controller/exchange/controller",
		"http://127.0.0.1:8072/integration-controller/":                 "ws://127.0.0.1:8072/integration-controller/exchange/controller",
		"wss://apim.example/integration-controller/exchange/controller": "wss://apim.example/integration-controller/exchange/controller",
		"https://apim.example":                                          "wss://apim.example/exchange/controller",
	} {
		if got, err := ControllerURL(in); err != nil || got != want {
			t.Errorf("%s → %s %v, want %s", in, got, err, want)
		}
	}
}

func TestBackoffDelays(t *testing.T) {
	b := DefaultBackoff
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		if got := b.Delay(n, 0.5); got != want {
			t.Errorf("attempt %d: %v, want %v", n, got, want)
		}
	}
	if lo, hi := b.Delay(0, 0), b.Delay(0, 0.999999); lo != 800*time.Millisecond || hi < 1199*time.Millisecond || hi > 1200*time.Millisecond {
		t.Errorf("jitter range %v..%v", lo, hi)
	}
	if got := b.Delay(1000, 0.5); got != 30*time.Second {
		t.Errorf("attempt 1000: %v", got)
	}
}
