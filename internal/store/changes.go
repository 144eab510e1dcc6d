package store

import (
	"context"
	"database/sql/driver"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// ChangeFeed tells a process that what watches follow may have changed,
// wherever the write was made. A signal carries nothing: the receiver
// reads again what it follows. It is a hint for promptness — watchers keep
// their polling as the guarantee — and it fires once more after the feed
// lost its connection (a resync: changes may have been missed meanwhile).
type ChangeFeed interface {
	// SubscribeChanges returns a channel that receives after changes
	// (signals may be merged) and a function to unsubscribe.
	SubscribeChanges() (<-chan struct{}, func())
}

// broadcaster fans one signal out to every subscriber without blocking:
// a subscriber that has not taken the last signal yet gets no second one.
type broadcaster struct {
	mu   sync.Mutex
	next int
	subs map[int]chan struct{}
}

func (b *broadcaster) subscribe() (<-chan struct{}, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = map[int]chan struct{}{}
	}
	id := b.next
	b.next++
	ch := make(chan struct{}, 1)
	b.subs[id] = ch
	return ch, func() { b.mu.Lock(); delete(b.subs, id); b.mu.Unlock() }
}

func (b *broadcaster) signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// SubscribeChanges on SQLite signals after this process's writes to
// integration runtimes (their specs and the reconciler's status writes),
// the one process that owns the file: a runtime turning Ready reaches its
// watches at once. Other writes are found by the watches' polling.
func (s *sqliteStore) SubscribeChanges() (<-chan struct{}, func()) {
	return s.changes.subscribe()
}

// signalAfter signals the subscribers once a write made outside a
// caller's transaction succeeded; one inside a transaction signals when
// Locked commits it.
func (s *sqliteStore) signalAfter(ctx context.Context, err error) error {
	if err == nil && s.txOf(ctx) == nil {
		s.changes.signal()
	}
	return err
}

func (s *sqliteStore) PutRuntime(ctx context.Context, r Runtime, refs []Ref) (Runtime, bool, error) {
	stored, created, err := s.sqlStore.PutRuntime(ctx, r, refs)
	return stored, created, s.signalAfter(ctx, err)
}

func (s *sqliteStore) DeleteRuntime(ctx context.Context, instanceID, name string) error {
	return s.signalAfter(ctx, s.sqlStore.DeleteRuntime(ctx, instanceID, name))
}

// SetRuntimeStatus signals only when the status changed: the reconciler
// writes every runtime's status on every pass.
func (s *sqliteStore) SetRuntimeStatus(ctx context.Context, instanceID, name, status string) error {
	changed, err := s.setRuntimeStatus(ctx, instanceID, name, status)
	if !changed {
		return err
	}
	return s.signalAfter(ctx, err)
}

func (s *sqliteStore) Locked(ctx context.Context, instanceID string, fn func(ctx context.Context) error) error {
	err := s.sqlStore.Locked(ctx, instanceID, fn)
	s.afterWrite(ctx)
	return s.signalAfter(ctx, err)
}

// changeRetry is how long the PostgreSQL feed waits before it listens
// again after losing its connection.
const changeRetry = 250 * time.Millisecond

// SubscribeChanges on PostgreSQL follows the NOTIFYs of migration 0020's
// triggers for this store's schema, on a connection of its own that is
// opened at the first subscription and listens until Close.
func (s *postgresStore) SubscribeChanges() (<-chan struct{}, func()) {
	s.startListening()
	return s.changes.subscribe()
}

func (s *postgresStore) startListening() {
	s.listenOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopListen = cancel
		go s.listen(ctx)
	})
}

func (s *postgresStore) listen(ctx context.Context) {
	for ctx.Err() == nil {
		conn, err := s.db.Conn(ctx)
		if err == nil {
			err = conn.Raw(func(dc any) error {
				pc := dc.(*stdlib.Conn).Conn()
				var schema string
				if err := pc.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
					return driver.ErrBadConn
				}
				if _, err := pc.Exec(ctx, `LISTEN sluice_changes`); err != nil {
					return driver.ErrBadConn
				}
				// Listening from now on; what changed while not listening
				// is found by one more read.
				s.changes.signal()
				for {
					n, err := pc.WaitForNotification(ctx)
					if err != nil {
						// The connection is not returned to the pool still
						// listening: ErrBadConn makes database/sql close it.
						return driver.ErrBadConn
					}
					if n.Payload == schema {
						s.changes.signal()
					}
				}
			})
			conn.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(changeRetry):
		}
	}
}
