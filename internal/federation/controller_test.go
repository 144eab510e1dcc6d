package federation

// Gravitee's management API (and its integration controller) cannot run
// here, so these tests run the agent against federationtest's controller,
// written from the public description of Gravitee's exchange protocol v1
// (see that package). The clock and the provider below are the tests' own.

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/federation/federationtest"
)

// closedOrTimer waits until the agent closes the connection or starts a
// timer of d, whichever comes first.
func closedOrTimer(t *testing.T, cc *federationtest.Conn, clk *fakeClock, d time.Duration) (bool, websocket.StatusCode) {
	t.Helper()
	deadline := time.Now().Add(federationtest.Guard)
	for time.Now().Before(deadline) {
		select {
		case code := <-cc.Closed():
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

// newFakeClock starts at the suite's test epoch.
func newFakeClock() *fakeClock { return &fakeClock{now: clocktest.Epoch()} }

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
	deadline := time.Now().Add(federationtest.Guard)
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
func startAgent(t *testing.T, c *federationtest.Controller, p Provider, clk *fakeClock, tweak func(*Config)) (*Agent, *runResult) {
	t.Helper()
	cfg := Config{Endpoint: c.Endpoint(), Token: secretOf(c.Token), IntegrationID: c.IntegrationID, Provider: p, Clock: clk,
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
		case <-time.After(federationtest.Guard):
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
	case <-time.After(federationtest.Guard):
		t.Fatal("the agent did not stop")
		return nil
	}
}

var errDown = errors.New("the Sluice API does not answer")
