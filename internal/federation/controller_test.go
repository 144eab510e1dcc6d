package federation

// Gravitee's management API (and its integration controller) cannot run
// here, so these tests run the agent against a controller written in the
// test from the public description of Gravitee's exchange protocol v1
// (../../../shared/reference/wire-clients.md §3): WebSocket upgrade on
// …/exchange/controller with "Authorization: bearer <token>" (the token
// is the value minus its first 6 characters, trimmed; 401 otherwise) and
// "X-Gravitee-Exchange-Protocol: v1"; binary frames only (a text frame is
// closed with 1003); HELLO first (anything else is closed with 1002),
// answered SUCCEEDED with the targetId when the integration and provider
// match, ERROR otherwise; replies to pings.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/sluice-dev/sluice/internal/federation/exchange"
)

// guard bounds how long a test waits for the agent to do something; it
// only turns a hang into a failure and is never what a test asserts.
const guard = 20 * time.Second

type testController struct {
	t             *testing.T
	srv           *httptest.Server
	token         string
	integrationID string
	provider      string
	refuseHello   string // non-empty: HELLO gets ERROR with this detail
	withholdPongs atomic.Bool
	pings         atomic.Int32
	upgrades      atomic.Int32
	unauthorized  atomic.Int32
	conns         chan *controllerConn
}

type controllerConn struct {
	t      *testing.T
	ws     *websocket.Conn
	hello  exchange.Command
	header http.Header
	in     chan exchange.Message // everything the agent sends after HELLO
	closed chan websocket.StatusCode
}

func newController(t *testing.T) *testController {
	c := &testController{t: t, token: "gravitee-token-1", integrationID: "int-42", provider: DefaultProviderType,
		conns: make(chan *controllerConn, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /integration-controller/exchange/controller", c.serve)
	c.srv = httptest.NewServer(mux)
	t.Cleanup(c.srv.Close)
	return c
}

func (c *testController) endpoint() string { return c.srv.URL + "/integration-controller" }

func (c *testController) serve(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	if len(auth) < 6 || strings.TrimSpace(auth[6:]) != c.token {
		c.unauthorized.Add(1)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.Header.Get(ProtocolHeader) != "v1" {
		http.Error(w, "unknown exchange protocol", http.StatusBadRequest)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OnPingReceived: func(context.Context, []byte) bool {
			c.pings.Add(1)
			return !c.withholdPongs.Load()
		},
	})
	if err != nil {
		return
	}
	c.upgrades.Add(1)
	ws.SetReadLimit(16 << 20)
	ctx := context.Background()
	typ, b, err := ws.Read(ctx)
	if err != nil {
		return
	}
	if typ != websocket.MessageBinary {
		_ = ws.Close(websocket.StatusUnsupportedData, "Unsupported text frame")
		return
	}
	m, err := exchange.Decode(b, len(b), len(b)+1)
	if err != nil || m.Command == nil || m.Command.Type != exchange.TypeHello {
		_ = ws.Close(websocket.StatusProtocolError, "Hello Command is first expected to initialize the exchange channel")
		return
	}
	var hp exchange.HelloPayload
	_ = exchange.DecodePayload(m.Command.Payload, &hp)
	var reply exchange.Reply
	switch {
	case c.refuseHello != "":
		reply = exchange.Failed(m.Command.ID, exchange.TypeHello, c.refuseHello)
	case hp.TargetID != c.integrationID || hp.Provider != c.provider:
		reply = exchange.Failed(m.Command.ID, exchange.TypeHello, "integration not found or provider mismatch")
	default:
		reply, _ = exchange.Succeeded(*m.Command, exchange.HelloReplyPayload{TargetID: hp.TargetID})
	}
	cc := &controllerConn{t: c.t, ws: ws, hello: *m.Command, header: r.Header.Clone(), in: make(chan exchange.Message, 64),
		closed: make(chan websocket.StatusCode, 1)}
	cc.write(mustReply(c.t, reply))
	if reply.CommandStatus != exchange.StatusSucceeded {
		// The agent closes; read until it does.
		_, _, err := ws.Read(ctx)
		cc.closed <- websocket.CloseStatus(err)
		return
	}
	c.conns <- cc
	for {
		typ, b, err := ws.Read(ctx)
		if err != nil {
			cc.closed <- websocket.CloseStatus(err)
			close(cc.in)
			return
		}
		if typ != websocket.MessageBinary {
			_ = ws.Close(websocket.StatusUnsupportedData, "Unsupported text frame")
			continue
		}
		m, err := exchange.Decode(b, len(b), len(b)+1)
		if err != nil {
			c.t.Errorf("controller: the agent sent an undecodable frame %q: %v", b, err)
			continue
		}
		cc.in <- m
	}
}

func mustReply(t *testing.T, r exchange.Reply) []byte {
	b, err := exchange.EncodeReply(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// next waits for the next accepted connection (after its HELLO).
func (c *testController) next(t *testing.T) *controllerConn {
	t.Helper()
	select {
	case cc := <-c.conns:
		return cc
	case <-time.After(guard):
		t.Fatal("the agent did not connect")
		return nil
	}
}

func (cc *controllerConn) write(frame []byte) {
	if err := cc.ws.Write(context.Background(), websocket.MessageBinary, frame); err != nil {
		cc.t.Logf("controller: write: %v", err)
	}
}

// send sends a command and returns its id.
func (cc *controllerConn) send(typ string, payload any) string {
	cc.t.Helper()
	cmd, err := exchange.NewCommand(uuid.NewString(), typ, payload)
	if err != nil {
		cc.t.Fatal(err)
	}
	b, err := exchange.EncodeCommand(cmd)
	if err != nil {
		cc.t.Fatal(err)
	}
	cc.write(b)
	return cmd.ID
}

// receive waits for the agent's next message.
func (cc *controllerConn) receive() exchange.Message {
	cc.t.Helper()
	select {
	case m, ok := <-cc.in:
		if !ok {
			cc.t.Fatal("the agent closed the connection")
		}
		return m
	case <-time.After(guard):
		cc.t.Fatal("nothing from the agent")
	}
	return exchange.Message{}
}

// reply waits for the agent's reply to command id.
func (cc *controllerConn) reply(id string) exchange.Reply {
	cc.t.Helper()
	m := cc.receive()
	if m.Reply == nil {
		cc.t.Fatalf("got command %+v, want the reply to %s", m.Command, id)
	}
	if m.Reply.CommandID != id {
		cc.t.Fatalf("got the reply to %s, want the one to %s", m.Reply.CommandID, id)
	}
	return *m.Reply
}

// command waits for a command of the agent's.
func (cc *controllerConn) command(typ string) exchange.Command {
	cc.t.Helper()
	m := cc.receive()
	if m.Command == nil || m.Command.Type != typ {
		cc.t.Fatalf("got %+v %+v, want a %s command", m.Command, m.Reply, typ)
	}
	return *m.Command
}

func (cc *controllerConn) ack(c exchange.Command) {
	cc.t.Helper()
	r, err := exchange.Succeeded(c, struct{}{})
	if err != nil {
		cc.t.Fatal(err)
	}
	cc.write(mustReply(cc.t, r))
}

// closedWith waits for the agent to close the connection.
func (cc *controllerConn) closedWith() websocket.StatusCode {
	cc.t.Helper()
	select {
	case code := <-cc.closed:
		return code
	case <-time.After(guard):
		cc.t.Fatal("the agent did not close the connection")
		return 0
	}
}

// closedOrTimer waits until the agent closes the connection or starts a
// timer of d, whichever comes first.
func (cc *controllerConn) closedOrTimer(t *testing.T, clk *fakeClock, d time.Duration) (bool, websocket.StatusCode) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for time.Now().Before(deadline) {
		select {
		case code := <-cc.closed:
			return true, code
		default:
		}
		for _, p := range clk.pending() {
			if p == d {
				return false, 0
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("neither a close nor a %v timer", d)
	return false, 0
}

// fakeClock is a manual clock: timers fire when Advance passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clk     *fakeClock
	at      time.Time
	d       time.Duration
	c       chan time.Time
	stopped bool
	fired   bool
}

// testEpoch is the base every test time is relative to.
var testEpoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: testEpoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clk: c, at: c.now.Add(d), d: d, c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// Advance moves time on and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.fired = true
			t.c <- c.now
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
}

// pending lists the durations of the timers still running.
func (c *fakeClock) pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for _, t := range c.timers {
		if !t.stopped && !t.fired {
			out = append(out, t.d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// waitTimer waits until a timer of exactly d is running: how the tests
// see the agent waiting out a backoff.
func (c *fakeClock) waitTimer(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for time.Now().Before(deadline) {
		for _, p := range c.pending() {
			if p == d {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no %v timer started; running: %v", d, c.pending())
}

// memProvider is an in-memory Provider standing in for Sluice's published
// APIs and apps, which these tests do not exercise: it records what the
// agent asks of it.
type memProvider struct {
	mu        sync.Mutex
	apis      []API
	unhealthy error
	subs      map[string]Subscription
	creds     map[string]Credential
	listErr   error
}

func newMemProvider(n int) *memProvider {
	p := &memProvider{subs: map[string]Subscription{}, creds: map[string]Credential{}}
	for i := range n {
		id := string(rune('a'+i)) + "-api"
		p.apis = append(p.apis, API{ID: id, Name: "API " + id, Version: "1.0", Description: "flows of " + id,
			URL:       "http://127.0.0.1:7800",
			Documents: []Document{{Kind: DocOpenAPI, Filename: id + ".json", Content: []byte(`{"openapi":"3.0.3","info":{"title":"` + id + `","version":"1.0"},"paths":{}}`)}},
			Plans: []Plan{{ID: id + "-gold", Name: "gold", Security: SecurityClientID, Characteristics: []string{"100/1m"}},
				{ID: id + "-token", Name: "token", Security: SecurityOAuth}, {ID: id + "-open", Name: "open", Security: SecurityNone}},
			Labels: []Label{{Name: "runtime", Value: id}, {Name: "endpoint", Value: "http://127.0.0.1:7800", URL: true}}})
	}
	return p
}

func (p *memProvider) APIs(context.Context) ([]API, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listErr != nil {
		return nil, p.listErr
	}
	return append([]API(nil), p.apis...), nil
}

func (p *memProvider) Subscribe(_ context.Context, s Subscription) (Credential, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.creds[s.SubscriptionID]; ok {
		return c, nil
	}
	c := Credential{AppID: "app-" + s.SubscriptionID, ClientID: "cid-" + s.SubscriptionID, ClientSecret: secretOf("slcs_" + s.SubscriptionID)}
	p.subs[s.SubscriptionID] = s
	p.creds[s.SubscriptionID] = c
	return c, nil
}

func (p *memProvider) Unsubscribe(_ context.Context, s Subscription) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.subs, s.SubscriptionID)
	delete(p.creds, s.SubscriptionID)
	return nil
}

func (p *memProvider) Health(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unhealthy
}

func (p *memProvider) setUnhealthy(err error) {
	p.mu.Lock()
	p.unhealthy = err
	p.mu.Unlock()
}

// startAgent runs an agent against c until the test ends.
func startAgent(t *testing.T, c *testController, p Provider, clk *fakeClock, tweak func(*Config)) (*Agent, *runResult) {
	t.Helper()
	cfg := Config{Endpoint: c.endpoint(), Token: secretOf(c.token), IntegrationID: c.integrationID, Provider: p, Clock: clk,
		Rand: func() float64 { return 0.5 }, Log: testLogger(t)}
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res := &runResult{done: make(chan struct{})}
	go func() {
		res.err = a.Run(ctx)
		close(res.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-res.done:
		case <-time.After(guard):
			t.Error("the agent did not stop")
		}
	})
	return a, res
}

// runResult is the end of an agent's Run.
type runResult struct {
	done chan struct{}
	err  error
}

func waitDone(t *testing.T, r *runResult) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(guard):
		t.Fatal("the agent did not stop")
		return nil
	}
}

var errDown = errors.New("the Sluice API does not answer")
