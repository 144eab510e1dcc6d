// Package federationtest is a Gravitee integration controller for tests,
// written from the public description of Gravitee's exchange protocol v1
// (../shared/reference/wire-clients.md §3), because Gravitee's management
// API cannot run here. It does what the description says a controller
// does: WebSocket upgrade on …/integration-controller/exchange/controller
// with "Authorization: bearer <token>" (the value minus its first 6
// characters, trimmed; 401 otherwise) and "X-Gravitee-Exchange-Protocol:
// v1"; binary frames only (a text frame is closed with 1003); HELLO first
// (anything else is closed with 1002), answered SUCCEEDED with the
// targetId when integration and provider match, ERROR otherwise; pongs to
// pings. Tests drive the rest: they send commands and answer the agent's.
package federationtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/sluice-dev/sluice/internal/federation/exchange"
)

// Guard bounds how long a test waits for the agent to do something; it
// only turns a hang into a failure and is never what a test asserts.
const Guard = 20 * time.Second

// Controller is a running test controller. Set its fields before the agent
// connects; the counters may be read at any time.
type Controller struct {
	t             *testing.T
	srv           *httptest.Server
	Token         string
	IntegrationID string
	Provider      string
	RefuseHello   string // non-empty: HELLO gets ERROR with this detail
	WithholdPongs atomic.Bool
	Pings         atomic.Int32
	Upgrades      atomic.Int32
	Unauthorized  atomic.Int32
	conns         chan *Conn
}

// Conn is one agent connection that completed HELLO.
type Conn struct {
	t      *testing.T
	WS     *websocket.Conn
	Hello  exchange.Command
	Header http.Header
	in     chan exchange.Message // everything the agent sends after HELLO
	closed chan websocket.StatusCode
}

// NewController starts a controller on a local port until the test ends;
// it accepts the token "gravitee-token-1" for integration "int-42" of
// provider "ibm-api-connect" unless the test changes them.
func NewController(t *testing.T) *Controller {
	c := &Controller{t: t, Token: "gravitee-token-1", IntegrationID: "int-42", Provider: "ibm-api-connect",
		conns: make(chan *Conn, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /integration-controller/exchange/controller", c.serve)
	c.srv = httptest.NewServer(mux)
	t.Cleanup(c.srv.Close)
	return c
}

// Endpoint is what an agent is configured with.
func (c *Controller) Endpoint() string { return c.srv.URL + "/integration-controller" }

func (c *Controller) serve(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	if len(auth) < 6 || strings.TrimSpace(auth[6:]) != c.Token {
		c.Unauthorized.Add(1)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	if r.Header.Get("X-Gravitee-Exchange-Protocol") != "v1" {
		http.Error(w, "unknown exchange protocol", http.StatusBadRequest)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OnPingReceived: func(context.Context, []byte) bool {
			c.Pings.Add(1)
			return !c.WithholdPongs.Load()
		},
	})
	if err != nil {
		return
	}
	c.Upgrades.Add(1)
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
	case c.RefuseHello != "":
		reply = exchange.Failed(m.Command.ID, exchange.TypeHello, c.RefuseHello)
	case hp.TargetID != c.IntegrationID || hp.Provider != c.Provider:
		reply = exchange.Failed(m.Command.ID, exchange.TypeHello, "integration not found or provider mismatch")
	default:
		reply, _ = exchange.Succeeded(*m.Command, exchange.HelloReplyPayload{TargetID: hp.TargetID})
	}
	cc := &Conn{t: c.t, WS: ws, Hello: *m.Command, Header: r.Header.Clone(), in: make(chan exchange.Message, 64),
		closed: make(chan websocket.StatusCode, 1)}
	cc.Write(MustReply(c.t, reply))
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

// MustReply frames a reply.
func MustReply(t *testing.T, r exchange.Reply) []byte {
	b, err := exchange.EncodeReply(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Next waits for the next accepted connection (after its HELLO).
func (c *Controller) Next(t *testing.T) *Conn {
	t.Helper()
	select {
	case cc := <-c.conns:
		return cc
	case <-time.After(Guard):
		t.Fatal("the agent did not connect")
		return nil
	}
}

// Write sends raw bytes as one binary frame.
func (cc *Conn) Write(frame []byte) {
	if err := cc.WS.Write(context.Background(), websocket.MessageBinary, frame); err != nil {
		cc.t.Logf("controller: write: %v", err)
	}
}

// Send sends a command and returns its id.
func (cc *Conn) Send(typ string, payload any) string {
	cc.t.Helper()
	cmd, err := exchange.NewCommand(uuid.NewString(), typ, payload)
	if err != nil {
		cc.t.Fatal(err)
	}
	b, err := exchange.EncodeCommand(cmd)
	if err != nil {
		cc.t.Fatal(err)
	}
	cc.Write(b)
	return cmd.ID
}

// Receive waits for the agent's next message.
func (cc *Conn) Receive() exchange.Message {
	cc.t.Helper()
	select {
	case m, ok := <-cc.in:
		if !ok {
			cc.t.Fatal("the agent closed the connection")
		}
		return m
	case <-time.After(Guard):
		cc.t.Fatal("nothing from the agent")
	}
	return exchange.Message{}
}

// Reply waits for the agent's reply to command id.
func (cc *Conn) Reply(id string) exchange.Reply {
	cc.t.Helper()
	m := cc.Receive()
	if m.Reply == nil {
		cc.t.Fatalf("got command %+v, want the reply to %s", m.Command, id)
	}
	if m.Reply.CommandID != id {
		cc.t.Fatalf("got the reply to %s, want the one to %s", m.Reply.CommandID, id)
	}
	return *m.Reply
}

// Command waits for a command of the agent's.
func (cc *Conn) Command(typ string) exchange.Command {
	cc.t.Helper()
	m := cc.Receive()
	if m.Command == nil || m.Command.Type != typ {
		cc.t.Fatalf("got %+v %+v, want a %s command", m.Command, m.Reply, typ)
	}
	return *m.Command
}

// Ack answers an agent's command with SUCCEEDED and an empty payload.
func (cc *Conn) Ack(c exchange.Command) {
	cc.t.Helper()
	r, err := exchange.Succeeded(c, struct{}{})
	if err != nil {
		cc.t.Fatal(err)
	}
	cc.Write(MustReply(cc.t, r))
}

// ClosedWith waits for the agent to close the connection.
func (cc *Conn) ClosedWith() websocket.StatusCode {
	cc.t.Helper()
	select {
	case code := <-cc.closed:
		return code
	case <-time.After(Guard):
		cc.t.Fatal("the agent did not close the connection")
		return 0
	}
}

// Closed yields the close code once the agent's connection has ended.
func (cc *Conn) Closed() <-chan websocket.StatusCode { return cc.closed }

// Messages yields what the agent sends after HELLO, for tests that read
// it themselves; it is closed when the connection ends.
func (cc *Conn) Messages() <-chan exchange.Message { return cc.in }
