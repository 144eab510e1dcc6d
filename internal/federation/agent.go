// Package federation is Sluice's Gravitee federation agent: it connects to
// a Gravitee integration controller over WebSocket, introduces itself with
// HELLO, answers the controller's commands (HEALTH_CHECK, PRIMARY,
// GOOD_BYE, DISCOVER, START_INGEST, SUBSCRIBE, UNSUBSCRIBE) from a
// Provider, pings, and reconnects with backoff when the connection ends.
//
// It owns the behaviour of the exchange; the wire codec is in the exchange
// sub-package and what is federated comes from a Provider. Nothing the
// controller sends can crash it: malformed or oversized commands are
// answered with an ERROR (or, when they cannot even be named, end the
// connection, which is then re-established).
package federation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/sluice-dev/sluice/internal/federation/exchange"
	"github.com/sluice-dev/sluice/internal/secret"
)

// Protocol facts the agent keeps to.
const (
	// ControllerPath is appended to the controller's endpoint, as
	// Gravitee's own agents do.
	ControllerPath = "/exchange/controller"
	// ProtocolHeader names the exchange protocol version on the upgrade.
	ProtocolHeader  = "X-Gravitee-Exchange-Protocol"
	ProtocolVersion = "v1"
	// PingInterval is how often the agent pings the controller.
	PingInterval = 5 * time.Second
	// ReplyTimeout is how long the agent waits for a reply to its own
	// commands (HELLO, INGEST).
	ReplyTimeout = 60 * time.Second
	// DefaultProviderType is the provider HELLO names unless configured:
	// Sluice speaks API Connect's platform API, and Gravitee checks the
	// integration was created for the provider the agent names.
	DefaultProviderType = "ibm-api-connect"
	// DefaultIngestBatch is how many APIs one INGEST batch carries at most.
	DefaultIngestBatch = 10
	// DefaultIngestBatchBytes bounds the encoded size of one INGEST batch
	// (the controller's WebSocket server limits message sizes).
	DefaultIngestBatchBytes = 256 << 10
	// maxInFlight bounds the controller commands handled at once.
	maxInFlight = 16
	// missedPings is how many ping intervals may pass without a pong
	// before the connection is taken for dead.
	missedPings = 2
)

// Config configures an agent.
type Config struct {
	// Endpoint is the controller's endpoint as Gravitee's agents are
	// configured with it (https://apim.example/integration-controller);
	// ControllerPath is appended unless it already ends the path. http,
	// https, ws and wss are accepted.
	Endpoint      string
	Token         secret.Value // sent as "Authorization: bearer <token>"
	IntegrationID string       // HELLO's targetId
	ProviderType  string       // HELLO's provider; DefaultProviderType when empty
	Provider      Provider
	Log           *slog.Logger
	Clock         Clock        // SystemClock when nil
	HTTPClient    *http.Client // for the upgrade (TLS settings); http.DefaultClient when nil
	Backoff       Backoff      // DefaultBackoff when zero
	Rand          func() float64
	// MaxFrameSize bounds a frame from the controller;
	// exchange.DefaultMaxFrameSize when 0.
	MaxFrameSize     int
	IngestBatch      int // DefaultIngestBatch when 0
	IngestBatchBytes int // DefaultIngestBatchBytes when 0
}

// Agent is a running federation agent.
type Agent struct {
	cfg Config
	url string

	mu      sync.Mutex
	state   State
	primary bool
}

// State is what the agent reports about itself.
type State struct {
	Connected   bool
	Primary     bool
	Connections int    // connections that completed HELLO
	LastError   string // why the last connection ended, "" if it has not
}

// New checks cfg and makes an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Provider == nil {
		return nil, errors.New("federation: no provider")
	}
	u, err := CheckSettings(cfg.Endpoint, cfg.Token, cfg.IntegrationID)
	if err != nil {
		return nil, err
	}
	if cfg.ProviderType == "" {
		cfg.ProviderType = DefaultProviderType
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.MaxFrameSize <= 0 {
		cfg.MaxFrameSize = exchange.DefaultMaxFrameSize
	}
	if cfg.IngestBatch <= 0 {
		cfg.IngestBatch = DefaultIngestBatch
	}
	if cfg.IngestBatchBytes <= 0 {
		cfg.IngestBatchBytes = DefaultIngestBatchBytes
	}
	return &Agent{cfg: cfg, url: u}, nil
}

// CheckSettings checks what connecting needs, so a command can refuse a
// configuration that cannot work before it starts anything; it returns
// the controller's WebSocket URL.
func CheckSettings(endpoint string, token secret.Value, integrationID string) (string, error) {
	if strings.TrimSpace(integrationID) == "" {
		return "", errors.New("federation: the integration id is empty: give the id of the integration created in Gravitee")
	}
	if token.IsZero() {
		return "", errors.New("federation: the controller token is empty: give a Gravitee token of the integration's organization")
	}
	return ControllerURL(endpoint)
}

// ControllerURL turns a configured endpoint into the WebSocket URL of the
// exchange controller.
func ControllerURL(endpoint string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(endpoint))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("federation: controller endpoint %q is not an absolute URL (https://apim.example/integration-controller)", endpoint)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("federation: controller endpoint %q has scheme %q: use https (or http for a local test)", endpoint, u.Scheme)
	}
	if u.User != nil {
		return "", fmt.Errorf("federation: controller endpoint must not carry credentials: give the token apart")
	}
	p := strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(p, ControllerPath) {
		p += ControllerPath
	}
	u.Path, u.RawPath = p, ""
	return u.String(), nil
}

// State reports the agent's current state.
func (a *Agent) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.state
	s.Primary = a.primary
	return s
}

// ErrHelloRefused wraps the controller's refusal of HELLO: the agent does
// not retry it (the integration id, provider or token is wrong).
var ErrHelloRefused = errors.New("the controller refused HELLO")

// errStop ends Run without an error: the controller said goodbye for good.
var errStop = errors.New("stop")

// Run connects and serves until ctx ends, the controller says GOOD_BYE
// without reconnect (or closes the exchange normally), or refuses HELLO
// (an error wrapping ErrHelloRefused). Every other end of a connection is
// followed by a new one after a backoff.
func (a *Agent) Run(ctx context.Context) error {
	attempt := 0
	for {
		helloed, err := a.session(ctx)
		a.mu.Lock()
		a.state.Connected = false
		if err != nil && !errors.Is(err, errStop) {
			a.state.LastError = err.Error()
		}
		a.mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, ErrHelloRefused):
			a.cfg.Log.Error("federation agent stopped: the controller refused HELLO", "integration", a.cfg.IntegrationID, "err", err)
			return err
		case errors.Is(err, errStop):
			a.cfg.Log.Info("federation agent stopped: the controller ended the exchange without asking to reconnect")
			return nil
		}
		if helloed {
			attempt = 0
		}
		delay := a.cfg.Backoff.Delay(attempt, a.cfg.Rand())
		attempt++
		a.cfg.Log.Warn("federation connection ended; reconnecting", "err", err, "in", delay.Round(time.Millisecond))
		t := a.cfg.Clock.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
}

// session is one connection: dial, HELLO, then serve until it ends.
// helloed reports whether HELLO succeeded (which resets the backoff).
func (a *Agent) session(ctx context.Context) (helloed bool, err error) {
	h := http.Header{}
	// Gravitee strips the first 6 characters ("bearer") and trims.
	h.Set("Authorization", "bearer "+a.cfg.Token.Reveal())
	h.Set(ProtocolHeader, ProtocolVersion)
	dctx, cancelDial := context.WithCancel(ctx)
	dialTimer := a.cfg.Clock.NewTimer(ReplyTimeout)
	go func() {
		select {
		case <-dialTimer.C():
			cancelDial()
		case <-dctx.Done():
		}
	}()
	conn, resp, err := websocket.Dial(dctx, a.url, &websocket.DialOptions{HTTPHeader: h, HTTPClient: a.cfg.HTTPClient})
	dialTimer.Stop()
	cancelDial()
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return false, fmt.Errorf("the controller refused the token (401) at %s", a.url)
		}
		if resp != nil {
			return false, fmt.Errorf("the controller answered %s to the upgrade at %s", resp.Status, a.url)
		}
		return false, fmt.Errorf("cannot reach the controller at %s: %w", a.url, err)
	}
	// Frames over the limit are read in part (to name them in the refusal)
	// and their rest discarded; the library closes the connection (1009)
	// on anything bigger than this hard limit.
	conn.SetReadLimit(int64(a.cfg.MaxFrameSize) * 4)
	s := &session{agent: a, conn: conn, pending: map[string]chan exchange.Reply{}, slots: make(chan struct{}, maxInFlight)}
	sctx, cancel := context.WithCancel(ctx)
	s.ctx = sctx
	defer func() {
		cancel()
		_ = conn.CloseNow()
		s.handlers.Wait()
	}()
	readDone := make(chan error, 1)
	go func() {
		err := s.readLoop()
		// Whatever waits on this connection (a reply, an ingest) stops now.
		cancel()
		readDone <- err
	}()

	reply, err := s.call(exchange.TypeHello, exchange.HelloPayload{TargetID: a.cfg.IntegrationID, Provider: a.cfg.ProviderType})
	if err != nil {
		return false, a.ended(s, readDone, fmt.Errorf("HELLO: %w", err))
	}
	if reply.CommandStatus != exchange.StatusSucceeded {
		_ = conn.Close(websocket.StatusNormalClosure, "HELLO refused")
		return false, fmt.Errorf("%w for integration %s (provider %s): %s", ErrHelloRefused, a.cfg.IntegrationID, a.cfg.ProviderType, orUnknown(reply.ErrorDetails))
	}
	a.mu.Lock()
	a.state.Connected = true
	a.state.Connections++
	a.primary = false
	a.mu.Unlock()
	a.cfg.Log.Info("federation agent connected", "controller", a.url, "integration", a.cfg.IntegrationID, "provider", a.cfg.ProviderType)

	pingDead := make(chan struct{})
	go s.pingLoop(pingDead)
	select {
	case err := <-readDone:
		return true, err
	case <-pingDead:
		_ = conn.Close(websocket.StatusGoingAway, "no pong from the controller")
		return true, errors.New("the controller did not answer pings")
	case <-ctx.Done():
		_ = conn.Close(websocket.StatusGoingAway, "agent stopping")
		return true, nil
	}
}

// ended waits for the read loop after a failure before HELLO completed,
// preferring its reason (the connection's end) when it has one.
func (a *Agent) ended(s *session, readDone chan error, err error) error {
	_ = s.conn.CloseNow()
	if rerr := <-readDone; rerr != nil && !errors.Is(err, ErrHelloRefused) {
		if errors.Is(rerr, errStop) {
			return rerr
		}
		return fmt.Errorf("%v (%v)", err, rerr)
	}
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// session is the state of one connection.
type session struct {
	agent    *Agent
	conn     *websocket.Conn
	ctx      context.Context
	handlers sync.WaitGroup
	slots    chan struct{}

	mu      sync.Mutex
	pending map[string]chan exchange.Reply
	pings   atomic.Int32 // pings sent and not yet answered
}

// readLoop reads frames until the connection ends; its error says why.
func (s *session) readLoop() error {
	limit := s.agent.cfg.MaxFrameSize
	for {
		typ, r, err := s.conn.Reader(s.ctx)
		if err != nil {
			return closeReason(err)
		}
		if typ != websocket.MessageBinary {
			// The protocol is binary frames only, as the controller itself
			// enforces with 1003.
			_ = s.conn.Close(websocket.StatusUnsupportedData, "text frames are not part of the exchange protocol")
			return errors.New("the controller sent a text frame")
		}
		head, size, err := readFrame(r, limit)
		if err != nil {
			return closeReason(err)
		}
		msg, err := exchange.Decode(head, size, limit)
		if err != nil {
			if s.refuse(err) {
				continue
			}
			var fe *exchange.FrameError
			reason := err.Error()
			if errors.As(err, &fe) {
				reason = fe.Reason
			}
			_ = s.conn.Close(websocket.StatusProtocolError, clip("unreadable exchange: "+reason))
			return fmt.Errorf("the controller sent an unreadable frame: %s", reason)
		}
		if msg.Reply != nil {
			s.deliver(*msg.Reply)
			continue
		}
		if msg.Command.Type == exchange.TypeGoodBye {
			if end, err := s.goodBye(*msg.Command); end {
				return err
			}
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.reply(exchange.Failed(msg.Command.ID, msg.Command.Type, fmt.Sprintf("too many commands in progress (%d): retry later", maxInFlight)))
			continue
		}
		s.handlers.Add(1)
		go func(c exchange.Command, frameType string) {
			defer func() { <-s.slots; s.handlers.Done() }()
			s.handle(c, frameType)
		}(*msg.Command, msg.FrameType)
	}
}

// readFrame reads a frame, keeping at most limit+1 of its bytes and
// counting the rest, so an oversized frame costs no memory beyond that.
func readFrame(r io.Reader, limit int) (head []byte, size int, err error) {
	head, err = io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, 0, err
	}
	size = len(head)
	if size > limit {
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			return nil, 0, err
		}
		size += int(n)
	}
	return head, size, nil
}

// refuse answers a command the decoder refused but could name with an
// ERROR reply; it reports whether it could.
func (s *session) refuse(err error) bool {
	var fe *exchange.FrameError
	var tl *exchange.TooLargeError
	switch {
	case errors.As(err, &tl):
		fe = &tl.FrameError
	case errors.As(err, &fe):
	default:
		return false
	}
	if fe.Kind == exchange.KindReply {
		// A reply we cannot read: its command will time out.
		s.agent.cfg.Log.Warn("federation: unreadable reply from the controller ignored", "reason", fe.Reason)
		return true
	}
	if fe.Kind != exchange.KindCommand || fe.CommandID == "" {
		return false
	}
	typ := fe.Type
	if !exchange.Known(typ) {
		typ = exchange.TypeUnknown
	}
	s.agent.cfg.Log.Warn("federation: command from the controller refused", "type", clip(fe.Type), "reason", fe.Reason)
	s.reply(exchange.Failed(fe.CommandID, typ, fe.Reason))
	return true
}

// closeReason turns the end of a connection into the agent's decision:
// a normal closure (1000) stops it, anything else reconnects.
func closeReason(err error) error {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure:
		return errStop
	case -1:
		return fmt.Errorf("connection lost: %w", err)
	default:
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return fmt.Errorf("the controller closed the connection (%d %s)", int(ce.Code), clip(ce.Reason))
		}
		return err
	}
}

// goodBye handles GOOD_BYE: the channel closes with 1013 when the
// controller asks the agent to come back, 1000 otherwise. As with
// Gravitee's own connectors, GOOD_BYE gets no reply: the close is the
// answer. A GOOD_BYE whose payload does not decode is refused and the
// connection goes on (end false).
func (s *session) goodBye(c exchange.Command) (end bool, err error) {
	var p exchange.GoodByePayload
	if err := exchange.DecodePayload(c.Payload, &p); err != nil {
		s.reply(exchange.Failed(c.ID, c.Type, err.Error()))
		return false, nil
	}
	if p.Reconnect {
		_ = s.conn.Close(websocket.StatusTryAgainLater, "GOOD_BYE with reconnection requested")
		return true, errors.New("the controller said GOOD_BYE and asked to reconnect")
	}
	_ = s.conn.Close(websocket.StatusNormalClosure, "GOOD_BYE")
	return true, errStop
}

// deliver hands a reply to the command waiting for it.
func (s *session) deliver(r exchange.Reply) {
	s.mu.Lock()
	ch := s.pending[r.CommandID]
	delete(s.pending, r.CommandID)
	s.mu.Unlock()
	if ch == nil {
		s.agent.cfg.Log.Debug("federation: reply to no pending command ignored", "type", r.Type)
		return
	}
	ch <- r // buffered: never blocks
}

// call sends a command and waits for its reply, at most ReplyTimeout.
func (s *session) call(typ string, payload any) (exchange.Reply, error) {
	c, err := exchange.NewCommand(uuid.NewString(), typ, payload)
	if err != nil {
		return exchange.Reply{}, err
	}
	frame, err := exchange.EncodeCommand(c)
	if err != nil {
		return exchange.Reply{}, err
	}
	ch := make(chan exchange.Reply, 1)
	s.mu.Lock()
	s.pending[c.ID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, c.ID)
		s.mu.Unlock()
	}()
	if err := s.conn.Write(s.ctx, websocket.MessageBinary, frame); err != nil {
		return exchange.Reply{}, fmt.Errorf("unable to send %s: %w", typ, err)
	}
	t := s.agent.cfg.Clock.NewTimer(ReplyTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r, nil
	case <-t.C():
	case <-s.ctx.Done():
	}
	// A reply that arrived just before the connection ended (or the timer
	// fired) still counts: select picks at random among ready cases, and
	// a HELLO that succeeded must reset the backoff.
	select {
	case r := <-ch:
		return r, nil
	default:
	}
	if s.ctx.Err() != nil {
		return exchange.Reply{}, fmt.Errorf("connection ended before the reply to %s", typ)
	}
	return exchange.Reply{}, fmt.Errorf("no reply to %s within %v", typ, ReplyTimeout)
}

// reply writes a reply; a failure to write means the connection is
// ending, which the read loop reports.
func (s *session) reply(r exchange.Reply) {
	frame, err := exchange.EncodeReply(r)
	if err != nil {
		frame, _ = exchange.EncodeReply(exchange.Failed(r.CommandID, r.Type, "the agent could not encode its reply"))
	}
	if err := s.conn.Write(s.ctx, websocket.MessageBinary, frame); err != nil {
		s.agent.cfg.Log.Debug("federation: reply not sent", "type", r.Type, "err", err)
	}
}

// pingLoop pings every PingInterval and closes dead when pongs stop.
func (s *session) pingLoop(dead chan struct{}) {
	for {
		t := s.agent.cfg.Clock.NewTimer(PingInterval)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		if s.pings.Load() >= missedPings {
			close(dead)
			return
		}
		s.pings.Add(1)
		go func() {
			if err := s.conn.Ping(s.ctx); err == nil {
				s.pings.Add(-1)
			}
		}()
	}
}

// clip keeps close reasons within the 123 bytes a close frame allows.
func clip(s string) string {
	if len(s) <= 120 {
		return s
	}
	cut := 117
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "..."
}
