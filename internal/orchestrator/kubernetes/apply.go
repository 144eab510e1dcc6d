package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

func configFromFile(path string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// Apply makes runtime d's Secret, Service, Deployment and its instance's
// NetworkPolicy what d says (server-side apply: a pass that changes
// nothing writes nothing) and reports what the cluster shows.
func (b *Backend) Apply(ctx context.Context, d orchestrator.Deployment) (orchestrator.Observed, error) {
	if err := b.blocked(d.Key); err != nil {
		return orchestrator.Observed{}, err
	}
	c, err := b.cluster()
	if err != nil {
		return orchestrator.Observed{}, err
	}
	ctx, cancel := ctxTimeout(ctx)
	defer cancel()
	obs, err := b.apply(ctx, c, d)
	if err != nil {
		return obs, b.failed(d.Key, err)
	}
	b.succeeded(d.Key)
	return obs, nil
}

func (b *Backend) apply(ctx context.Context, c kclient.Interface, d orchestrator.Deployment) (orchestrator.Observed, error) {
	ns, name := b.opts.Namespace, objectName(d.Key)
	if d.BundleURL == "" || d.BundleToken.IsZero() {
		return orchestrator.Observed{}, errors.New("kubernetes: runtimes fetch their bundle from the control plane, and none is configured")
	}
	existing, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		existing, err = nil, nil
	}
	if err != nil {
		return orchestrator.Observed{}, classify("read", "Deployment "+ns+"/"+name, err)
	}
	if existing != nil && (existing.Annotations[AnnInstance] != d.Key.InstanceID || existing.Labels[LabelInstall] != b.opts.Install) {
		return orchestrator.Observed{}, &orchestrator.ClusterError{Reason: "NameTaken",
			Message: fmt.Sprintf("Deployment %s/%s exists and is not this runtime's (another installation's, or made by hand): delete it or choose another --kube-namespace", ns, name)}
	}
	admin, err := b.adminToken(ctx, c, d.Key)
	if err != nil {
		return orchestrator.Observed{}, err
	}
	var owner *metav1.OwnerReference
	if existing != nil {
		owner = ownerOf(existing)
	}
	if err := apply(ctx, c.CoreV1().RESTClient(), "secrets", ns, name, b.secretObject(d, admin.Reveal(), owner)); err != nil {
		return orchestrator.Observed{}, classify("apply", "Secret "+ns+"/"+name, err)
	}
	if err := apply(ctx, c.CoreV1().RESTClient(), "services", ns, name, b.serviceObject(d.Key, d.UID, owner)); err != nil {
		return orchestrator.Observed{}, classify("apply", "Service "+ns+"/"+name, err)
	}
	pol := b.policyObject(d.Key.InstanceID)
	if err := apply(ctx, c.NetworkingV1().RESTClient(), "networkpolicies", ns, pol.Name, pol); err != nil {
		return orchestrator.Observed{}, classify("apply", "NetworkPolicy "+ns+"/"+pol.Name, err)
	}
	want, err := b.deploymentObject(d)
	if err != nil {
		return orchestrator.Observed{}, err
	}
	dep := &appsv1.Deployment{}
	if err := applyInto(ctx, c.AppsV1().RESTClient(), "deployments", ns, name, want, dep); err != nil {
		return orchestrator.Observed{}, classify("apply", "Deployment "+ns+"/"+name, err)
	}
	if owner == nil {
		// The Secret and Service belong to the Deployment from now on:
		// deleting it (by hand, too) lets the cluster collect them.
		owner = ownerOf(dep)
		if err := apply(ctx, c.CoreV1().RESTClient(), "secrets", ns, name, b.secretObject(d, admin.Reveal(), owner)); err != nil {
			return orchestrator.Observed{}, classify("apply", "Secret "+ns+"/"+name, err)
		}
		if err := apply(ctx, c.CoreV1().RESTClient(), "services", ns, name, b.serviceObject(d.Key, d.UID, owner)); err != nil {
			return orchestrator.Observed{}, classify("apply", "Service "+ns+"/"+name, err)
		}
	}
	return b.observe(ctx, c, d.Key, dep, admin)
}

func ownerOf(dep *appsv1.Deployment) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
}

// adminToken is runtime k's admin credential: from its Secret (made by
// this or an earlier control plane), or a new one.
func (b *Backend) adminToken(ctx context.Context, c kclient.Interface, k orchestrator.Key) (secret.Value, error) {
	b.mu.Lock()
	tok, ok := b.admin[k]
	b.mu.Unlock()
	if ok {
		return tok, nil
	}
	s, err := c.CoreV1().Secrets(b.opts.Namespace).Get(ctx, objectName(k), metav1.GetOptions{})
	switch {
	case err == nil && len(s.Data[keyAdminToken]) > 0:
		tok = secret.New(string(s.Data[keyAdminToken]))
	case err == nil || apierrors.IsNotFound(err):
		if tok, err = newAdminToken(); err != nil {
			return secret.Value{}, err
		}
	default:
		return secret.Value{}, classify("read", "Secret "+b.opts.Namespace+"/"+objectName(k), err)
	}
	b.mu.Lock()
	b.admin[k] = tok
	b.mu.Unlock()
	return tok, nil
}

// apply server-side applies obj (with its TypeMeta) as Sluice's field
// manager, taking over fields another manager set.
func apply(ctx context.Context, rc rest.Interface, resource, ns, name string, obj any) error {
	return applyInto(ctx, rc, resource, ns, name, obj, nil)
}

func applyInto(ctx context.Context, rc rest.Interface, resource, ns, name string, obj, into any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	req := rc.Patch(types.ApplyPatchType).Namespace(ns).Resource(resource).Name(name).
		Param("fieldManager", fieldManager).Param("force", "true").Body(body)
	res := req.Do(ctx)
	if into == nil {
		return res.Error()
	}
	raw, err := res.Raw()
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, into)
}

// Observe reports on runtime k from its Deployment and Pods.
func (b *Backend) Observe(ctx context.Context, k orchestrator.Key) (orchestrator.Observed, error) {
	if err := b.blocked(k); err != nil {
		return orchestrator.Observed{}, err
	}
	c, err := b.cluster()
	if err != nil {
		return orchestrator.Observed{}, err
	}
	ctx, cancel := ctxTimeout(ctx)
	defer cancel()
	dep, err := c.AppsV1().Deployments(b.opts.Namespace).Get(ctx, objectName(k), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return orchestrator.Observed{}, nil
	}
	if err != nil {
		return orchestrator.Observed{}, b.failed(k, classify("read", "Deployment "+b.opts.Namespace+"/"+objectName(k), err))
	}
	admin, err := b.adminToken(ctx, c, k)
	if err != nil {
		return orchestrator.Observed{}, b.failed(k, err)
	}
	obs, err := b.observe(ctx, c, k, dep, admin)
	if err != nil {
		return obs, b.failed(k, err)
	}
	return obs, nil
}

// observe reads the pods and the Service of dep and maps them to status.
func (b *Backend) observe(ctx context.Context, c kclient.Interface, k orchestrator.Key, dep *appsv1.Deployment, admin secret.Value) (orchestrator.Observed, error) {
	ns := b.opts.Namespace
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: b.runtimeSelector(k)})
	if err != nil {
		return orchestrator.Observed{}, classify("list", "the Pods of "+ns+"/"+dep.Name, err)
	}
	svc, err := c.CoreV1().Services(ns).Get(ctx, objectName(k), metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return orchestrator.Observed{}, classify("read", "Service "+ns+"/"+objectName(k), err)
	}
	obs := mapStatus(dep, pods.Items)
	if err == nil && obs.AvailableReplicas > 0 {
		obs.BaseURL = b.serviceURL(svc)
	}
	if len(obs.AdminURLs) > 0 {
		obs.AdminURL, obs.AdminToken = obs.AdminURLs[0], admin
	}
	return obs, nil
}

// Delete removes runtime k's Deployment, Service and Secret (its pods go
// with the Deployment), and its instance's NetworkPolicy when no other
// runtime of the instance is left.
func (b *Backend) Delete(ctx context.Context, k orchestrator.Key) error {
	c, err := b.cluster()
	if err != nil {
		return err
	}
	ctx, cancel := ctxTimeout(ctx)
	defer cancel()
	ns, name := b.opts.Namespace, objectName(k)
	bg := metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}
	for _, del := range []struct {
		kind string
		fn   func() error
	}{
		{"Deployment", func() error { return c.AppsV1().Deployments(ns).Delete(ctx, name, bg) }},
		{"Service", func() error { return c.CoreV1().Services(ns).Delete(ctx, name, bg) }},
		{"Secret", func() error { return c.CoreV1().Secrets(ns).Delete(ctx, name, bg) }},
	} {
		if err := del.fn(); err != nil && !apierrors.IsNotFound(err) {
			return classify("delete", del.kind+" "+ns+"/"+name, err)
		}
	}
	b.mu.Lock()
	delete(b.admin, k)
	delete(b.retry, k)
	b.mu.Unlock()
	left, err := c.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: b.installSelector() + "," + LabelInstance + "=" + labelFor(k.InstanceID)})
	if err != nil {
		return classify("list", "Deployments", err)
	}
	for _, d := range left.Items {
		if d.Annotations[AnnInstance] == k.InstanceID && d.DeletionTimestamp == nil {
			return nil
		}
	}
	if err := c.NetworkingV1().NetworkPolicies(ns).Delete(ctx, policyName(k.InstanceID), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return classify("delete", "NetworkPolicy "+ns+"/"+policyName(k.InstanceID), err)
	}
	return nil
}

// List names the runtimes this installation has objects of: Deployments,
// and Secrets and Services left without one (a Delete cut short), so
// the reconciler finishes removing them.
func (b *Backend) List(ctx context.Context) ([]orchestrator.Key, error) {
	c, err := b.cluster()
	if err != nil {
		return nil, err
	}
	ctx, cancel := ctxTimeout(ctx)
	defer cancel()
	opts := metav1.ListOptions{LabelSelector: b.installSelector()}
	seen := map[orchestrator.Key]bool{}
	add := func(m metav1.ObjectMeta) {
		k := orchestrator.Key{InstanceID: m.Annotations[AnnInstance], Name: m.Annotations[AnnRuntime]}
		if k.InstanceID != "" && k.Name != "" && m.Name == objectName(k) {
			seen[k] = true
		}
	}
	deps, err := c.AppsV1().Deployments(b.opts.Namespace).List(ctx, opts)
	if err != nil {
		return nil, classify("list", "Deployments", err)
	}
	for _, d := range deps.Items {
		add(d.ObjectMeta)
	}
	secrets, err := c.CoreV1().Secrets(b.opts.Namespace).List(ctx, opts)
	if err != nil {
		return nil, classify("list", "Secrets", err)
	}
	for _, s := range secrets.Items {
		add(s.ObjectMeta)
	}
	svcs, err := c.CoreV1().Services(b.opts.Namespace).List(ctx, opts)
	if err != nil {
		return nil, classify("list", "Services", err)
	}
	for _, s := range svcs.Items {
		add(s.ObjectMeta)
	}
	out := make([]orchestrator.Key, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// classify turns a client-go error into a ClusterError naming what was
// asked and what the cluster answered.
func classify(verb, what string, err error) *orchestrator.ClusterError {
	var ce *orchestrator.ClusterError
	if errors.As(err, &ce) {
		return ce
	}
	subject := "the cluster"
	if what != "" {
		subject = fmt.Sprintf("the cluster, asked to %s %s,", verb, what)
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		msg := status.Status().Message
		reason := "Refused"
		switch {
		case apierrors.IsForbidden(err) && strings.Contains(msg, "exceeded quota"):
			reason = "QuotaExceeded"
		case apierrors.IsForbidden(err):
			reason = "Forbidden"
		case apierrors.IsUnauthorized(err):
			reason = "Unauthorized"
		case apierrors.IsInvalid(err):
			reason = "Invalid"
		case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), apierrors.IsServiceUnavailable(err), apierrors.IsTooManyRequests(err):
			reason = "Unavailable"
		}
		if msg == "" {
			msg = err.Error()
		}
		return &orchestrator.ClusterError{Reason: reason, Message: fmt.Sprintf("%s answered %d %s: %s", subject, status.Status().Code, status.Status().Reason, msg)}
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, context.DeadlineExceeded) {
		return &orchestrator.ClusterError{Reason: "Unreachable", Message: fmt.Sprintf("%s did not answer: %v", subject, err)}
	}
	return &orchestrator.ClusterError{Reason: "Unreachable", Message: fmt.Sprintf("%s failed: %v", subject, err)}
}
