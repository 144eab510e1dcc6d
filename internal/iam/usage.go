package iam

import (
	"context"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/store"
)

// usage collects "last used" times of API keys and client credentials in
// memory and writes them in one transaction a second. Writing them on
// every token exchange made two extra write transactions per request
// compete with the audit's group commit for the database; a last-used time
// is a hint for people, so up to a second of it may be lost in a crash
// (audit records, which are not hints, are written before answering).
type usage struct {
	mu      sync.Mutex
	keys    map[string]time.Time
	clients map[string]time.Time
}

func (u *usage) key(id string, at time.Time) {
	u.mu.Lock()
	if u.keys == nil {
		u.keys, u.clients = map[string]time.Time{}, map[string]time.Time{}
	}
	u.keys[id] = at
	u.mu.Unlock()
}

func (u *usage) client(id string, at time.Time) {
	u.mu.Lock()
	if u.keys == nil {
		u.keys, u.clients = map[string]time.Time{}, map[string]time.Time{}
	}
	u.clients[id] = at
	u.mu.Unlock()
}

func (u *usage) take() (map[string]time.Time, map[string]time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	k, c := u.keys, u.clients
	u.keys, u.clients = nil, nil
	return k, c
}

// overlay returns stored with the pending (not yet written) last use of
// id, when newer, so this process's readers see its own recent uses.
func overlay(stored time.Time, pending map[string]time.Time, id string) time.Time {
	if at, ok := pending[id]; ok && at.After(stored) {
		return at
	}
	return stored
}

func (u *usage) pendingKeys(ks []store.APIKey) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := range ks {
		ks[i].LastUsedAt = overlay(ks[i].LastUsedAt, u.keys, ks[i].ID)
	}
}

func (u *usage) pendingClients(cs []store.ClientCredential) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := range cs {
		cs[i].LastUsedAt = overlay(cs[i].LastUsedAt, u.clients, cs[i].ClientID)
	}
}

// FlushUsage writes the collected last-used times.
func (s *Service) FlushUsage(ctx context.Context) error {
	keys, clients := s.used.take()
	if len(keys)+len(clients) == 0 {
		return nil
	}
	return s.Store.RecordUse(ctx, keys, clients)
}

// RecordUsage flushes last-used times every interval until ctx is done,
// then once more.
func (s *Service) RecordUsage(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.FlushUsage(fctx)
			cancel()
			return
		case <-t.C:
			_ = s.FlushUsage(ctx)
		}
	}
}
