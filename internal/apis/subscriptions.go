package apis

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/store"
)

// Subscription states.
const (
	StateActive  = "active"
	StatePending = "pending" // the plan needs approval
)

// SubscriptionSpec is a subscription as a caller writes it.
type SubscriptionSpec struct {
	Plan string `json:"plan"`
	// App is "catalog/consumer-org/app" (ids or names).
	App string `json:"app"`
}

// SubscriptionStatus is where a subscription stands.
type SubscriptionStatus struct {
	State      string `json:"state"`
	AppID      string `json:"appId"`
	ApprovedBy string `json:"approvedBy,omitempty"`
}

// Subscription is a stored subscription with its spec decoded.
type Subscription struct {
	store.PublishedObject
	Spec   SubscriptionSpec
	Status SubscriptionStatus
}

func decodeSubscription(o store.PublishedObject) (Subscription, error) {
	sub := Subscription{PublishedObject: o}
	if err := json.Unmarshal([]byte(o.Spec), &sub.Spec); err != nil {
		return sub, fmt.Errorf("apis: stored spec of subscription %s: %w", o.Name, err)
	}
	if err := json.Unmarshal([]byte(o.Status), &sub.Status); err != nil {
		return sub, fmt.Errorf("apis: stored status of subscription %s: %w", o.Name, err)
	}
	return sub, nil
}

// PutSubscription subscribes an app to a plan. It is active at once
// unless the plan needs approval; replacing it keeps its state when plan
// and app stay the same.
func (s *Service) PutSubscription(ctx context.Context, p iam.Principal, name string, spec SubscriptionSpec, createOnly bool) (Subscription, bool, error) {
	object := "subscription/" + name
	if err := resource.ValidateName("subscription", name); err != nil {
		return Subscription{}, false, iam.Invalidf("%s", err.Error())
	}
	if spec.Plan == "" || spec.App == "" {
		return Subscription{}, false, iam.Invalidf("spec.plan and spec.app are required: the plan's name and the app as catalog/consumer-org/app")
	}
	pl, err := s.Store.GetPublished(ctx, p.InstanceID, store.KindPlan, spec.Plan)
	if err != nil {
		return Subscription{}, false, iam.Invalidf("spec.plan names plan %s, which does not exist", spec.Plan)
	}
	plan, err := decodePlan(pl)
	if err != nil {
		return Subscription{}, false, err
	}
	if s.Apps == nil {
		return Subscription{}, false, iam.Invalidf("consumer apps are not available on this control plane: nothing can subscribe")
	}
	app, err := s.Apps.ResolveApp(ctx, p, spec.App)
	if err != nil {
		return Subscription{}, false, err
	}
	spec.Plan = plan.Name
	status := SubscriptionStatus{State: StateActive, AppID: app.ID}
	if plan.Spec.Approval {
		status.State = StatePending
	}
	cur, err := s.Store.GetPublished(ctx, p.InstanceID, store.KindSubscription, name)
	if err == nil {
		if createOnly {
			return Subscription{}, false, iam.Conflictf("subscription %s exists already", name)
		}
		if old, err := decodeSubscription(cur); err == nil && old.Spec.Plan == spec.Plan && old.Status.AppID == app.ID {
			status = old.Status
		}
	}
	specJSON, _ := json.Marshal(spec)
	statusJSON, _ := json.Marshal(status)
	now := s.now()
	stored, created, err := s.Store.PutPublished(ctx, store.PublishedObject{InstanceID: p.InstanceID, Kind: store.KindSubscription, Name: name, ID: newID(),
		Spec: string(specJSON), Status: string(statusJSON), CreatedAt: now, CreatedBy: p.Actor(), UpdatedAt: now, UpdatedBy: p.Actor()})
	err = iam.StoreErr(err, "subscription "+name)
	action := "subscription.update"
	if created {
		action = "subscription.create"
	}
	if err := s.IAM.Finish(ctx, p, action, object, err); err != nil {
		return Subscription{}, false, err
	}
	s.Notify()
	sub, err := decodeSubscription(stored)
	return sub, created, err
}

// ApproveSubscription makes a pending subscription active.
func (s *Service) ApproveSubscription(ctx context.Context, p iam.Principal, ref string) (Subscription, error) {
	sub, err := s.GetSubscription(ctx, p, ref)
	if err != nil {
		return sub, err
	}
	object := "subscription/" + sub.Name
	if sub.Status.State == StateActive {
		return sub, nil
	}
	sub.Status.State, sub.Status.ApprovedBy = StateActive, p.Actor()
	statusJSON, _ := json.Marshal(sub.Status)
	o := sub.PublishedObject
	o.Status, o.UpdatedAt, o.UpdatedBy = string(statusJSON), s.now(), p.Actor()
	stored, _, err := s.Store.PutPublished(ctx, o)
	if err := s.IAM.Finish(ctx, p, "subscription.approve", object, iam.StoreErr(err, "subscription "+sub.Name)); err != nil {
		return Subscription{}, err
	}
	s.Notify()
	return decodeSubscription(stored)
}

// GetSubscription reads a subscription by name or id.
func (s *Service) GetSubscription(ctx context.Context, p iam.Principal, ref string) (Subscription, error) {
	o, err := s.Store.GetPublished(ctx, p.InstanceID, store.KindSubscription, ref)
	if err != nil {
		return Subscription{}, iam.StoreErr(err, "subscription "+ref)
	}
	return decodeSubscription(o)
}

// ListSubscriptions lists a page of the instance's subscriptions, by name.
func (s *Service) ListSubscriptions(ctx context.Context, p iam.Principal, req iam.ListRequest) (iam.ListPage[Subscription], error) {
	return pagePublished(ctx, s, p, req, store.KindSubscription, decodeSubscription)
}

// CountSubscriptions counts the instance's subscriptions.
func (s *Service) CountSubscriptions(ctx context.Context, p iam.Principal) (int, error) {
	return s.Store.CountPublished(ctx, p.InstanceID, store.KindSubscription)
}

func (s *Service) listSubscriptions(ctx context.Context, instanceID string) ([]Subscription, error) {
	os, err := s.Store.ListPublished(ctx, instanceID, store.KindSubscription, store.Page{})
	if err != nil {
		return nil, err
	}
	out := make([]Subscription, 0, len(os))
	for _, o := range os {
		sub, err := decodeSubscription(o)
		if err != nil {
			return nil, err
		}
		out = append(out, sub)
	}
	return out, nil
}

// DeleteSubscription unsubscribes.
func (s *Service) DeleteSubscription(ctx context.Context, p iam.Principal, name string) error {
	err := iam.StoreErr(s.Store.DeletePublished(ctx, p.InstanceID, store.KindSubscription, name), "subscription "+name)
	if err = s.IAM.Finish(ctx, p, "subscription.delete", "subscription/"+name, err); err == nil {
		s.Notify()
	}
	return err
}
