package apis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/store"
)

// Credentials is what the gateway needs of an app's credentials: package
// apps answers it. Expired leases may be left out or kept (the gateway
// checks expiry at use).
type Credentials interface {
	// GatewayApps returns the instance's apps with their credentials.
	GatewayApps(ctx context.Context, instanceID string) ([]App, []gateway.Credential, error)
}

// GatewayState compiles what the gateway of runtime rec enforces: the
// APIs whose flows it serves (by BAR file, or naming the runtime), their
// plans, the active subscriptions to those plans, the subscribed apps
// with their credentials, and the keys that verify app tokens.
func (s *Service) GatewayState(ctx context.Context, rec store.Runtime) (gateway.State, error) {
	var st gateway.State
	var rs orchestrator.Spec
	if err := json.Unmarshal([]byte(rec.Spec), &rs); err != nil {
		return st, fmt.Errorf("apis: stored spec of runtime %s: %w", rec.Name, err)
	}
	runs := map[string]bool{}
	for _, u := range rs.BarURL {
		if ref, err := orchestrator.ParseBARURL(u); err == nil && ref.Name != "" {
			runs[ref.Name] = true
		}
	}
	all, err := s.listAPIs(ctx, rec.InstanceID)
	if err != nil {
		return st, err
	}
	served := map[string]*gateway.API{}
	var order []string
	for _, a := range all {
		if a.Spec.Runtime != "" && a.Spec.Runtime != rec.Name {
			continue
		}
		ga := &gateway.API{ID: a.ID, Name: a.Name, Version: a.Spec.Version, BasePath: a.Spec.BasePath}
		for _, f := range a.Status.Flows {
			if runs[f.BARFile] {
				ga.Flows = append(ga.Flows, f.Project+"/"+f.Name)
			}
		}
		if len(ga.Flows) > 0 {
			served[a.Name] = ga
			order = append(order, a.Name)
		}
	}
	plans, err := s.listPlans(ctx, rec.InstanceID)
	if err != nil {
		return st, err
	}
	planAPIs := map[string]bool{}
	for _, pl := range plans {
		gp := gateway.Plan{ID: pl.ID, Name: pl.Name, Auth: pl.Spec.Auth, ClientSecret: pl.Spec.ClientSecret,
			RateLimit: gateway.Limit{Requests: pl.Limit.Requests, Window: gateway.Duration(pl.Limit.Window)}}
		for _, name := range pl.Spec.APIs {
			if ga := served[name]; ga != nil {
				ga.Plans = append(ga.Plans, gp)
				planAPIs[pl.Name] = true
			}
		}
	}
	for _, name := range order {
		st.APIs = append(st.APIs, *served[name])
	}
	subs, err := s.listSubscriptions(ctx, rec.InstanceID)
	if err != nil {
		return st, err
	}
	planIDs := map[string]string{}
	for _, pl := range plans {
		planIDs[pl.Name] = pl.ID
	}
	for _, sub := range subs {
		if planAPIs[sub.Spec.Plan] {
			st.Subscriptions = append(st.Subscriptions, gateway.Subscription{AppID: sub.Status.AppID, PlanID: planIDs[sub.Spec.Plan], Active: sub.Status.State == StateActive})
		}
	}
	// Every app of the instance, subscribed or not: an app the gateway
	// knows but that has no subscription is answered 403, not 401.
	if len(planAPIs) > 0 && s.Credentials != nil {
		apps, creds, err := s.Credentials.GatewayApps(ctx, rec.InstanceID)
		if err != nil {
			return st, err
		}
		now := s.now()
		for _, a := range apps {
			st.Apps = append(st.Apps, gateway.App{ID: a.ID, Name: a.Name, ConsumerOrgID: a.ConsumerOrgID, ConsumerOrgName: a.ConsumerOrgName,
				CatalogID: a.CatalogID, CatalogName: a.CatalogName, Enabled: a.Enabled})
		}
		for _, c := range creds {
			if c.ExpiresAt.IsZero() || c.ExpiresAt.After(now) {
				st.Credentials = append(st.Credentials, c)
			}
		}
	}
	if forceBasicAuth(rs) {
		st.ForceBasicAuth = true
		if st.BasicAuth, err = s.basicAuth(ctx, rec.InstanceID, rec.Name); err != nil {
			return st, err
		}
	}
	if s.IAM != nil && s.IAM.Tokens != nil {
		keys, _ := json.Marshal(s.IAM.Tokens.JWKS())
		st.Keys, st.Issuer, st.Audience = keys, s.IAM.Tokens.Issuer, s.IAM.Tokens.Audience
	}
	return st, nil
}

// gatewayEntry is the last compiled gateway state of one runtime, shared
// by all of its watches; it is kept while the runtime exists, so that its
// revision keeps growing across long polls (it restarts with the process).
type gatewayEntry struct {
	mu      sync.Mutex
	rev     int64            // grows by one whenever the state's tag changes
	tag     string           // gateway.Tag of state
	state   gateway.State    // with Revision rev
	changes uint64           // Service.changes when it was compiled
	polled  time.Time        // the poll tick it was last compiled for
	stamp   store.WriteStamp // the store's write stamp before that compile (SQLite)
}

// gatewayQuietMax is the longest a poll leaves a gateway state as it was
// compiled while the store's write stamp says nothing was written to it,
// by this process or another (SQLite: store.WriteStamper). Every input of
// a state is in the store but for time: a retired signing key leaves the
// JWKS after its retention without a write (a lease past its expiry too,
// but the gateway refuses that by itself).
const gatewayQuietMax = time.Minute

func (s *Service) gatewayEntry(uid string) *gatewayEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gateways == nil {
		s.gateways = map[string]*gatewayEntry{}
	}
	e := s.gateways[uid]
	if e == nil {
		e = &gatewayEntry{}
		s.gateways[uid] = e
	}
	return e
}

func (s *Service) forgetGateway(uid string) {
	s.mu.Lock()
	delete(s.gateways, uid)
	s.mu.Unlock()
}

// current returns runtime uid's state. It is compiled again only when
// this process changed something since the last compile, or when a watch's
// poll ticks (at polled) a poll or more after the last poll's compile, for
// changes made through another replica of the control plane or to what
// nothing here announces (a runtime's spec, signing keys): once per
// runtime however many watches it has.
func (s *Service) current(ctx context.Context, e *gatewayEntry, uid string, polled time.Time, poll time.Duration) (gateway.State, string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	changes := s.changes.Load()
	due := !polled.IsZero() && (e.polled.IsZero() || polled.Sub(e.polled) >= poll)
	// On SQLite a poll finds another process's writes by the stamp, so
	// an idle control plane reads nothing (and runs none of the SQL
	// engine's code) while nothing is written.
	ws, stamped := s.Store.(store.WriteStamper)
	var stamp store.WriteStamp
	if stamped {
		stamp = ws.WriteStamp() // before the reads: a write during them moves it
		if due && e.tag != "" && stamp == e.stamp && (e.polled.IsZero() || polled.Sub(e.polled) < gatewayQuietMax) {
			due = false
			if e.polled.IsZero() {
				e.polled = polled // compiled since, not for, a poll: the quiet spell starts now
			}
		}
	}
	if e.tag != "" && e.changes == changes && !due {
		return e.state, e.tag, nil
	}
	rec, err := s.Store.RuntimeByUID(ctx, uid)
	if errors.Is(err, store.ErrNotFound) {
		s.forgetGateway(uid)
	}
	if err != nil {
		return gateway.State{}, "", iam.StoreErr(err, "runtime "+uid)
	}
	st, err := s.GatewayState(ctx, rec)
	if err != nil {
		return st, "", err
	}
	if tag := gateway.Tag(st); tag != e.tag {
		e.rev++
		e.tag = tag
	}
	st.Revision = e.rev
	e.state, e.changes, e.stamp = st, changes, stamp
	if due {
		e.polled = polled
	}
	return e.state, e.tag, nil
}

// WaitGatewayState returns runtime uid's gateway state and its tag as soon
// as the tag differs from since, or the unchanged state when wait passes
// (the caller answers that with nothing new). The state is versioned: its
// Revision grows by one with every change of content, and an unchanged
// state is neither compiled again nor sent while nothing changes — it is
// compiled again on a change this process makes, and every poll for
// changes made through other replicas, once per runtime however many
// watches it has.
func (s *Service) WaitGatewayState(ctx context.Context, uid, since string, wait, poll time.Duration) (gateway.State, string, error) {
	changed, stop := s.Changed()
	defer stop()
	e := s.gatewayEntry(uid)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var polled time.Time // the tick that woke this round, if one did
	for {
		st, tag, err := s.current(ctx, e, uid, polled, poll)
		polled = time.Time{}
		if err != nil {
			return st, "", err
		}
		if tag != since {
			return st, tag, nil
		}
		select {
		case <-ctx.Done():
			return st, tag, ctx.Err()
		case <-deadline.C:
			return st, tag, nil
		case <-changed:
		case polled = <-tick.C:
		}
	}
}
