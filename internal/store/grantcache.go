package store

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The per-request grant check (GrantState) is the one store read every
// authenticated call makes, and the credentials' lookup
// (ExchangeCredentials) the one every token exchange makes. Their answers
// are remembered until a change that may alter them, and revocation still
// bites on the very next request, on every replica and whichever process
// wrote (README, "Revocation bites at once"): before a request may use a
// remembered answer it waits for a barrier begun after the request was,
// and the barrier forgets every answer that a change committed before it
// may have made stale.
//
//   - SQLite: the barrier asks, on a connection of its own, for PRAGMA
//     data_version, which changes whenever another connection — of this
//     process or another, such as `sluice instances delete` — has
//     committed; then, as most commits are audit events and other writes
//     no answer depends on, for the grant tables' version, which
//     migration 0023's triggers bump in the same transaction as any write
//     to them; a new version forgets all answers. While nothing at all is
//     committed it asks nothing: the WAL index's header, which every
//     commit rewrites, is as it was at its last run (walindex.go).
//   - PostgreSQL: migration 0025's triggers bump the same versions in the
//     same transaction as any write to the grant tables, from any
//     replica — at its commit (0026: deferred, so that the version row,
//     a lock every such writer takes, is the last lock a transaction
//     takes and cannot close a deadlock) — and the barrier reads them in
//     one plain SELECT: under READ COMMITTED it sees every commit that
//     finished before it began. It runs prepared, on a connection of its
//     own outside the pool (pgVersions). (The
//     barrier used to be a NOTIFY of its own that had to come back on the
//     listening connection after every earlier commit's: one round trip
//     through the notification queue, milliseconds under load, that
//     bounded the throughput of authenticated requests.)
//
// Concurrent requests share one barrier (a request waits for the next one
// to begin), so under load the check costs a fraction of a read per
// request. When a barrier cannot be had (no listening connection, an
// error), the request reads the database, as it always did.

// The same barrier serves the pages of an instance's runtimes that lists
// read (the dashboard's and scripts' polling of GET
// /api/v1/integration-runtimes): migration 0024 (SQLite) and 0025
// (PostgreSQL) keep a version of the runtimes as of the grant tables.

// versionsQuery reads the grant tables' and the runtimes' versions
// (migrations 0023 and 0024 on SQLite, 0025 on PostgreSQL) as one number:
// both only grow, so their sum changes when either does.
const versionsQuery = `SELECT (SELECT version FROM grant_version) + (SELECT version FROM runtime_version)`

// maxGrantEntries bounds the memory held: past it the cache starts over.
const maxGrantEntries = 1 << 14

// maxCachedRuntimes bounds the runtime rows the remembered pages hold
// together: past it they start over.
const maxCachedRuntimes = 4096

type grantKey struct{ clientID, keyID, subjectID, jti string }

type grantEntry struct {
	g   GrantState
	gen uint64
}

// exchangeKey is what a token exchange presents: the client id and the
// API key's hash (never the key).
type exchangeKey struct{ clientID, keyHash string }

type exchangeEntry struct {
	ec  ExchangeCredentials
	gen uint64
}

// grantCache maps a token's grant to the state read at a generation, and
// an exchange's presented client and key to the credentials read at one;
// an answer read before the latest invalidation is never returned.
type grantCache struct {
	mu        sync.Mutex
	gen       uint64
	entries   map[grantKey]grantEntry
	exchanges map[exchangeKey]exchangeEntry
	runtimes  map[string]runtimePage // by runtimePageKey
	rows      int                    // the rows runtimes hold
}

type runtimePage struct {
	rows []Runtime
	gen  uint64
}

// generation is read before the database is, so an invalidation that
// happens while the read is in flight makes its answer stale at once.
func (c *grantCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *grantCache) get(k grantKey, gen uint64) (GrantState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || e.gen != gen || gen != c.gen {
		return GrantState{}, false
	}
	return e.g, true
}

func (c *grantCache) put(k grantKey, g GrantState, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // read before an invalidation: may be stale already
	}
	if c.entries == nil || len(c.entries) >= maxGrantEntries {
		c.entries = make(map[grantKey]grantEntry, 256)
	}
	c.entries[k] = grantEntry{g, gen}
}

func (c *grantCache) getExchange(k exchangeKey, gen uint64) (ExchangeCredentials, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.exchanges[k]
	if !ok || e.gen != gen || gen != c.gen {
		return ExchangeCredentials{}, false
	}
	return e.ec, true
}

func (c *grantCache) putExchange(k exchangeKey, ec ExchangeCredentials, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.exchanges == nil || len(c.exchanges) >= maxGrantEntries {
		c.exchanges = make(map[exchangeKey]exchangeEntry, 64)
	}
	c.exchanges[k] = exchangeEntry{ec, gen}
}

func (c *grantCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
	clear(c.exchanges)
	clear(c.runtimes)
	c.rows = 0
}

// runtimePage returns a copy of the rows remembered for key at gen: the
// caller may reorder or cut its slice.
func (c *grantCache) runtimePage(key string, gen uint64) ([]Runtime, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.runtimes[key]
	if !ok || e.gen != gen || gen != c.gen {
		return nil, false
	}
	return slices.Clone(e.rows), true
}

func (c *grantCache) putRuntimePage(key string, rows []Runtime, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || len(rows) > maxCachedRuntimes {
		return
	}
	if c.runtimes == nil || c.rows+len(rows) > maxCachedRuntimes {
		c.runtimes, c.rows = make(map[string]runtimePage), 0
	}
	if old, ok := c.runtimes[key]; ok {
		c.rows -= len(old.rows)
	}
	c.runtimes[key] = runtimePage{slices.Clone(rows), gen}
	c.rows += len(rows)
}

// runtimePageKey names a page of an instance's runtimes unambiguously
// (a page's After comes from a client's continue token: any bytes).
func runtimePageKey(instanceID string, pg Page) string {
	var b strings.Builder
	for _, part := range append([]string{instanceID, strconv.Itoa(pg.Offset), strconv.Itoa(pg.Limit)}, pg.After...) {
		b.WriteString(strconv.Itoa(len(part)))
		b.WriteByte(':')
		b.WriteString(part)
	}
	return b.String()
}

// barrier runs sync for waiters, one run at a time: a waiter is answered
// by a run that began after it called wait, and every waiter that came
// while a run was in flight shares the next one. That keeps revocation
// linearizable however many requests share a run: a change committed
// before a request began is in the snapshot of a run that began after the
// request did, and the run forgets every answer the change may have made
// stale before the request is let read. A run the request could have
// joined while it was already in flight — begun before the request, with
// a snapshot that may predate the change — answers only those who waited
// before it began (TestBarrierRunBegunBeforeARequestDoesNotAnswerIt).
type barrier struct {
	sync func(ctx context.Context) bool
	// fast, when set, tells without a run that a run begun now would
	// forget nothing (SQLite: nothing was committed since the last run),
	// so the caller needs no run: the check itself began after the call.
	fast func() bool

	mu      sync.Mutex
	running bool
	next    *barrierRound
}

type barrierRound struct {
	done    chan struct{}
	ok      bool
	waiters int // for tests: how many wait for this round
}

func (b *barrier) wait(ctx context.Context) bool {
	sc, _ := ctx.Value(barrierScopeKey{}).(*barrierScope)
	if sc != nil && sc.passed.CompareAndSwap(b, spentScope) {
		return true // the request's own barrier, passed since it began
	}
	ok := (b.fast != nil && b.fast()) || b.waitRound(ctx)
	if ok && sc != nil {
		sc.passed.CompareAndSwap(nil, b)
	}
	return ok
}

func (b *barrier) waitRound(ctx context.Context) bool {
	b.mu.Lock()
	if !b.running {
		// Nobody syncs: this caller does, at once, on its own context.
		b.running = true
		b.mu.Unlock()
		ok := b.sync(ctx)
		b.handOff()
		return ok
	}
	r := b.next
	if r == nil {
		r = &barrierRound{done: make(chan struct{})}
		b.next = r
	}
	r.waiters++
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.ok
	case <-ctx.Done():
		return false
	}
}

// waiting reports how many callers wait for the next run (for tests).
func (b *barrier) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next == nil {
		return 0
	}
	return b.next.waiters
}

// handOff ends a run: the waiters that gathered meanwhile get theirs from
// a goroutine of the barrier, so no caller syncs for others for long.
func (b *barrier) handOff() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next == nil {
		b.running = false
		return
	}
	go b.serve()
}

func (b *barrier) serve() {
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		r.ok = b.sync(context.Background())
		close(r.done)
	}
}

// A request's store reads need one barrier between them, not one each:
// the first barrier it passes began after the request did, so what it
// forgot holds for every later read of the request as well. The runtime
// list read its page after the bearer's grant check, and waited for a
// second barrier run for it (two SELECTs of the versions per request on
// PostgreSQL). A request scope (ShareBarrier) lets the read that follows
// the first barrier skip its own — once: a request that reads again
// later, as a watch does after each change, waits for a barrier again,
// or it would never see a change committed after it began.
type barrierScope struct {
	// passed is the barrier passed in this scope; spentScope once the
	// read after it has skipped its own.
	passed atomic.Pointer[barrier]
}

type barrierScopeKey struct{}

// spentScope marks a scope whose one shared barrier was used.
var spentScope = new(barrier)

// ShareBarrier returns a context for one request (HTTP middleware calls
// it before authenticating): its grant check's barrier also serves the
// next read of runtimes or grants the request makes (see barrierScope).
// Revocation still bites on the request: the barrier began after ctx was
// made.
func ShareBarrier(ctx context.Context) context.Context {
	return context.WithValue(ctx, barrierScopeKey{}, new(barrierScope))
}

// GrantState answers from the cache when a barrier says it may, else
// reads the database and remembers the answer. Inside a transaction it
// always reads: the transaction may have changed what it reads.
func (s *sqlStore) GrantState(ctx context.Context, clientID, keyID, subjectID, jti string) (GrantState, error) {
	if s.txOf(ctx) != nil || s.grantsFresh == nil || !s.grantsFresh(ctx) {
		return s.readGrantState(ctx, clientID, keyID, subjectID, jti)
	}
	k := grantKey{clientID, keyID, subjectID, jti}
	gen := s.grants.generation()
	if g, ok := s.grants.get(k, gen); ok {
		return g, nil
	}
	g, err := s.readGrantState(ctx, clientID, keyID, subjectID, jti)
	if err == nil {
		s.grants.put(k, g, gen)
	}
	return g, err
}

// ExchangeCredentials answers from the cache when a barrier says it may,
// as GrantState does. Only a pair that was found whole is remembered — a
// real client with a real key — so made-up ids and keys cannot fill the
// cache, and a refused exchange reads again. The answer carries the
// secret's hash, not a verdict: the caller checks the presented secret,
// the instance, the lock and the expiry against it every time.
func (s *sqlStore) ExchangeCredentials(ctx context.Context, clientID, keyHash string) (ExchangeCredentials, error) {
	if s.txOf(ctx) != nil || s.grantsFresh == nil || !s.grantsFresh(ctx) {
		return s.readExchangeCredentials(ctx, clientID, keyHash)
	}
	k := exchangeKey{clientID, keyHash}
	gen := s.grants.generation()
	if ec, ok := s.grants.getExchange(k, gen); ok {
		return ec, nil
	}
	ec, err := s.readExchangeCredentials(ctx, clientID, keyHash)
	if err == nil && ec.ClientFound && ec.KeyFound {
		s.grants.putExchange(k, ec, gen)
	}
	return ec, err
}

// ListRuntimes answers a page of one instance's runtimes as GrantState
// answers grants: from what was remembered when a barrier says it may,
// else from the database. Inside a transaction, and for every instance's
// runtimes (the reconciler, which reads once a pass), it always reads.
func (s *sqlStore) ListRuntimes(ctx context.Context, instanceID string, pg Page) ([]Runtime, error) {
	if instanceID == "" || s.txOf(ctx) != nil || s.grantsFresh == nil || !s.grantsFresh(ctx) {
		return s.listRuntimes(ctx, instanceID, pg)
	}
	key := runtimePageKey(instanceID, pg)
	gen := s.grants.generation()
	if rows, ok := s.grants.runtimePage(key, gen); ok {
		return rows, nil
	}
	rows, err := s.listRuntimes(ctx, instanceID, pg)
	if err == nil {
		s.grants.putRuntimePage(key, rows, gen)
	}
	return rows, err
}
