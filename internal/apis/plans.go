package apis

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/store"
)

// PlanSpec is a plan as a caller writes it. A plan of several APIs is a
// product in API Connect's terms.
type PlanSpec struct {
	Title       string   `json:"title,omitempty"`
	Description string   `json:"description,omitempty"`
	APIs        []string `json:"apis"`
	// Auth is gateway.AuthClientID, AuthOAuth or AuthNone.
	Auth string `json:"auth"`
	// ClientSecret makes a client-id plan require X-IBM-Client-Secret.
	ClientSecret bool `json:"clientSecret,omitempty"`
	// RateLimit is "N/DURATION" per app ("100/1m"); "" or "off": none.
	RateLimit string `json:"rateLimit,omitempty"`
	// Approval makes new subscriptions wait for an approval.
	Approval bool `json:"approval,omitempty"`
}

// Plan is a stored plan with its spec decoded.
type Plan struct {
	store.PublishedObject
	Spec  PlanSpec
	Limit iam.Limit
}

func decodePlan(o store.PublishedObject) (Plan, error) {
	pl := Plan{PublishedObject: o}
	if err := json.Unmarshal([]byte(o.Spec), &pl.Spec); err != nil {
		return pl, fmt.Errorf("apis: stored spec of plan %s: %w", o.Name, err)
	}
	pl.Limit, _ = iam.ParseLimit(pl.Spec.RateLimit)
	return pl, nil
}

// PutPlan creates or replaces a plan; every API it names must exist.
func (s *Service) PutPlan(ctx context.Context, p iam.Principal, name string, spec PlanSpec, createOnly bool) (Plan, bool, error) {
	if err := resource.ValidateName("plan", name); err != nil {
		return Plan{}, false, iam.Invalidf("%s", err.Error())
	}
	switch spec.Auth {
	case gateway.AuthClientID, gateway.AuthOAuth, gateway.AuthNone:
	case "":
		return Plan{}, false, iam.Invalidf("spec.auth is missing: use client-id, oauth or none")
	default:
		return Plan{}, false, iam.Invalidf("spec.auth %q is not client-id, oauth or none", spec.Auth)
	}
	if spec.ClientSecret && spec.Auth != gateway.AuthClientID {
		return Plan{}, false, iam.Invalidf("spec.clientSecret applies to client-id plans only")
	}
	if len(spec.Title) > maxTitle || len(spec.Description) > maxDescription {
		return Plan{}, false, iam.Invalidf("spec.title is longer than %d or spec.description than %d characters", maxTitle, maxDescription)
	}
	if _, err := iam.ParseLimit(spec.RateLimit); err != nil {
		return Plan{}, false, iam.Invalidf("spec.rateLimit: %v", err)
	}
	if len(spec.APIs) == 0 {
		return Plan{}, false, iam.Invalidf("spec.apis is empty: name the APIs the plan gives access to")
	}
	seen := map[string]bool{}
	for i, ref := range spec.APIs {
		a, err := s.Store.GetPublished(ctx, p.InstanceID, store.KindAPI, ref)
		if err != nil {
			return Plan{}, false, iam.Invalidf("spec.apis names API %s, which does not exist", ref)
		}
		if seen[a.Name] {
			return Plan{}, false, iam.Invalidf("spec.apis names API %s twice", a.Name)
		}
		seen[a.Name] = true
		spec.APIs[i] = a.Name // stored by name: ids are for foreign wires
	}
	if createOnly {
		if _, err := s.Store.GetPublished(ctx, p.InstanceID, store.KindPlan, name); err == nil {
			return Plan{}, false, iam.Conflictf("plan %s exists already", name)
		}
	}
	specJSON, _ := json.Marshal(spec)
	now := s.now()
	stored, created, err := s.Store.PutPublished(ctx, store.PublishedObject{InstanceID: p.InstanceID, Kind: store.KindPlan, Name: name, ID: newID(),
		Spec: string(specJSON), CreatedAt: now, CreatedBy: p.Actor(), UpdatedAt: now, UpdatedBy: p.Actor()})
	err = iam.StoreErr(err, "plan "+name)
	action := "plan.update"
	if created {
		action = "plan.create"
	}
	if err := s.IAM.Finish(ctx, p, action, "plan/"+name, err); err != nil {
		return Plan{}, false, err
	}
	s.Notify()
	pl, err := decodePlan(stored)
	return pl, created, err
}

// GetPlan reads a plan by name or id.
func (s *Service) GetPlan(ctx context.Context, p iam.Principal, ref string) (Plan, error) {
	o, err := s.Store.GetPublished(ctx, p.InstanceID, store.KindPlan, ref)
	if err != nil {
		return Plan{}, iam.StoreErr(err, "plan "+ref)
	}
	return decodePlan(o)
}

// ListPlans lists a page of the instance's plans, by name.
func (s *Service) ListPlans(ctx context.Context, p iam.Principal, req iam.ListRequest) (iam.ListPage[Plan], error) {
	return pagePublished(ctx, s, p, req, store.KindPlan, decodePlan)
}

// CountPlans counts the instance's plans.
func (s *Service) CountPlans(ctx context.Context, p iam.Principal) (int, error) {
	return s.Store.CountPublished(ctx, p.InstanceID, store.KindPlan)
}

func (s *Service) listPlans(ctx context.Context, instanceID string) ([]Plan, error) {
	os, err := s.Store.ListPublished(ctx, instanceID, store.KindPlan, store.Page{})
	if err != nil {
		return nil, err
	}
	out := make([]Plan, 0, len(os))
	for _, o := range os {
		pl, err := decodePlan(o)
		if err != nil {
			return nil, err
		}
		out = append(out, pl)
	}
	return out, nil
}

// DeletePlan removes a plan; one with subscriptions is refused unless
// force, which deletes them too.
func (s *Service) DeletePlan(ctx context.Context, p iam.Principal, name string, force bool) error {
	pl, err := s.GetPlan(ctx, p, name)
	if err != nil {
		return err
	}
	subs, err := s.listSubscriptions(ctx, p.InstanceID)
	if err != nil {
		return err
	}
	var users []string
	for _, sub := range subs {
		if sub.Spec.Plan == pl.Name {
			users = append(users, sub.Name)
		}
	}
	if len(users) > 0 && !force {
		return s.IAM.Finish(ctx, p, "plan.delete", "plan/"+pl.Name,
			iam.Conflictf("plan %s has %d subscription(s) (%s): delete them first, or delete with force to delete them too", pl.Name, len(users), strings.Join(users, ", ")))
	}
	for _, u := range users {
		if err := s.Store.DeletePublished(ctx, p.InstanceID, store.KindSubscription, u); err != nil {
			return iam.StoreErr(err, "subscription "+u)
		}
	}
	err = iam.StoreErr(s.Store.DeletePublished(ctx, p.InstanceID, store.KindPlan, pl.Name), "plan "+pl.Name)
	if err = s.IAM.Finish(ctx, p, "plan.delete", "plan/"+pl.Name, err); err == nil {
		s.Notify()
	}
	return err
}
