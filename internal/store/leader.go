package store

import (
	"context"
	"hash/fnv"
	"time"
)

// Leadership is held by one process at a time among those sharing a
// store, for work that must not run twice (the reconciler).
type Leadership interface {
	// AcquireLeader blocks until this process leads for name (or ctx
	// ends). lost is closed if leadership is lost (the connection holding
	// it broke); release gives it up.
	AcquireLeader(ctx context.Context, name string) (lost <-chan struct{}, release func(), err error)
}

// AcquireLeader on SQLite leads at once: one process owns the file.
func (s *sqliteStore) AcquireLeader(ctx context.Context, name string) (<-chan struct{}, func(), error) {
	return make(chan struct{}), func() {}, nil
}

func leaderKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("sluice leader " + name))
	return int64(h.Sum64() >> 1)
}

// AcquireLeader on PostgreSQL holds a session advisory lock on a
// connection of its own: the lock lives exactly as long as the connection,
// so a crashed leader's lock is freed by the server and another replica
// takes over.
func (s *postgresStore) AcquireLeader(ctx context.Context, name string) (<-chan struct{}, func(), error) {
	for {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return nil, nil, err
		}
		// Advisory locks are per database, stores are per schema: stores
		// in other schemas of the same database (tests, several sluice
		// installations) must not contend for one leadership.
		var schema string
		if err := conn.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			conn.Close()
			return nil, nil, err
		}
		key := leaderKey(schema + "/" + name)
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
			conn.Close()
			return nil, nil, err
		}
		if got {
			lost := make(chan struct{})
			stop := make(chan struct{})
			go func() {
				defer close(lost)
				t := time.NewTicker(2 * time.Second)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						err := conn.PingContext(pctx)
						cancel()
						if err != nil {
							return
						}
					}
				}
			}()
			release := func() {
				close(stop)
				<-lost
				_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
				conn.Close()
			}
			return lost, release, nil
		}
		conn.Close()
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
