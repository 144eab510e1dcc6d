package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sluice-dev/sluice/internal/egress"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

// Each instance has one egress allow-list (package egress): what its
// flows' http steps and its runtimes' external barURL fetches may reach
// beyond the public internet. Instance admins set it; the reconciler
// pushes it to the runtimes in their configuration (egress/policy.json,
// together with the control plane's deny-list), so a change rolls them
// over like any other configuration change.

// egressSetting names an instance's allow-list in the store's settings.
func egressSetting(instanceID string) string {
	return store.InstanceSetting("egress-policy", instanceID)
}

// maxEgressEntries bounds an allow-list.
const maxEgressEntries = 256

// EgressPolicies reads and sets instances' egress allow-lists.
type EgressPolicies struct {
	Store store.Store
	IAM   *iam.Service
	Kick  func() // wakes the reconciler; nil: none
}

// LoadEgressAllow reads an instance's allow-list; none set is empty.
func LoadEgressAllow(ctx context.Context, st store.Store, instanceID string) ([]string, error) {
	raw, err := st.GetSetting(ctx, egressSetting(instanceID))
	if errors.Is(err, store.ErrNotFound) {
		return []string{}, nil
	}
	if err != nil {
		return nil, err
	}
	var f egress.File
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		return nil, fmt.Errorf("orchestrator: stored egress policy of %s: %w", instanceID, err)
	}
	if f.Allow == nil {
		f.Allow = []string{}
	}
	return f.Allow, nil
}

// Get answers the caller's instance's allow-list.
func (e *EgressPolicies) Get(ctx context.Context, p iam.Principal) ([]string, error) {
	return LoadEgressAllow(ctx, e.Store, p.InstanceID)
}

// Put replaces the caller's instance's allow-list (the route admits
// admins only). A bad entry is a 400 naming it, and nothing changes.
func (e *EgressPolicies) Put(ctx context.Context, p iam.Principal, allow []string) ([]string, error) {
	if allow == nil {
		return nil, iam.Invalidf("allow is missing: give a list of addresses, CIDRs or host names (an empty list closes everything local)")
	}
	if len(allow) > maxEgressEntries {
		return nil, iam.Invalidf("allow has %d entries; at most %d", len(allow), maxEgressEntries)
	}
	seen := map[string]bool{}
	var clean []string
	for i, s := range allow {
		if _, err := egress.ParseRule(s); err != nil {
			return nil, iam.Invalidf("allow[%d]: %s", i, err.Error())
		}
		if !seen[s] {
			seen[s] = true
			clean = append(clean, s)
		}
	}
	if clean == nil {
		clean = []string{}
	}
	b, _ := json.Marshal(egress.File{Allow: clean})
	err := e.Store.PutSetting(ctx, egressSetting(p.InstanceID), string(b))
	if err := e.IAM.Finish(ctx, p, "egressPolicy.update", "egressPolicy", err); err != nil {
		return nil, err
	}
	if e.Kick != nil {
		e.Kick()
	}
	return clean, nil
}

// egressPolicy is what a runtime of instanceID may connect to: the
// instance's allow-list and the control plane's deny-list. A stored list
// that cannot be read closes everything local.
func (r *Reconciler) egressPolicy(ctx context.Context, instanceID string) (egress.File, *egress.Policy) {
	allow, err := LoadEgressAllow(ctx, r.Store, instanceID)
	if err != nil {
		r.Log.Warn("unable to read the egress policy; local addresses stay closed", "instance", instanceID, "err", err)
		allow = []string{}
	}
	f := egress.File{Allow: allow, Deny: r.EgressDeny}
	p, err := egress.Parse(f.Allow, f.Deny)
	if err != nil {
		r.Log.Warn("bad egress policy; local addresses stay closed", "instance", instanceID, "err", err)
		f.Allow = []string{}
		p, _ = egress.Parse(nil, f.Deny)
	}
	return f, p
}

// egressConfig is the policy as the runtime's configuration file.
func egressConfig(f egress.File) ConfigFile {
	b, _ := json.Marshal(f)
	return ConfigFile{Type: "egress", Name: "policy.json", Data: b}
}
