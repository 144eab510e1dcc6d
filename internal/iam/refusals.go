package iam

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/store"
)

// refusalWindow is how long refused token requests naming no client are
// counted together before one audit row records them.
const refusalWindow = time.Minute

// maxTallies bounds the open windows (one per source address and
// instance); past it, new sources are counted under one overflow entry.
const maxTallies = 10000

// refusalTally counts token requests refused because they name no
// existing client. Anyone can make up client and instance ids by the
// thousand; one audit row each would let them flood the audit trail (and
// file rows under instances that do not exist). Instead each source gets
// one row per window with the count, filed under the instance it named
// when that instance exists, and under no instance (operators') otherwise.
type refusalTally struct {
	mu   sync.Mutex
	open map[tallyKey]*tally
}

type tallyKey struct{ source, instanceID string }

type tally struct {
	first, last time.Time
	n           int
}

// add counts one refusal of source naming instanceID.
func (rt *refusalTally) add(ctx context.Context, s *Service, source, instanceID string) {
	if instanceID != "" {
		if _, err := s.Store.GetInstance(ctx, instanceID); err != nil {
			instanceID = ""
		}
	}
	now := s.now()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.open == nil {
		rt.open = map[tallyKey]*tally{}
	}
	k := tallyKey{source, instanceID}
	if _, ok := rt.open[k]; !ok && len(rt.open) >= maxTallies {
		k = tallyKey{"(many sources)", ""}
	}
	t := rt.open[k]
	if t == nil {
		t = &tally{first: now}
		rt.open[k] = t
	}
	t.n++
	t.last = now
}

// FlushRefusals writes one audit row per source and window of refused
// token requests that named no client: for windows that have ended, or
// all of them when all is set (at shutdown).
func (s *Service) FlushRefusals(ctx context.Context, all bool) error {
	now := s.now()
	s.refusals.mu.Lock()
	var done []store.AuditEvent
	for k, t := range s.refusals.open {
		if !all && now.Sub(t.first) < refusalWindow {
			continue
		}
		delete(s.refusals.open, k)
		done = append(done, store.AuditEvent{At: t.last, InstanceID: k.instanceID, Actor: "client:unknown", Action: "token.refuse",
			Object: "token", Outcome: OutcomeDenied, Source: k.source,
			Detail: fmt.Sprintf("%d token requests naming no existing client, API key or refresh token refused between %s and %s",
				t.n, t.first.UTC().Format(time.RFC3339), t.last.UTC().Format(time.RFC3339))})
	}
	s.refusals.mu.Unlock()
	for _, ev := range done {
		if err := s.Audit.Record(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// RecordRefusals flushes ended refusal windows every so often until ctx
// is done, then writes the open ones too.
func (s *Service) RecordRefusals(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.FlushRefusals(fctx, true)
			cancel()
			return
		case <-t.C:
			_ = s.FlushRefusals(ctx, false)
		}
	}
}
