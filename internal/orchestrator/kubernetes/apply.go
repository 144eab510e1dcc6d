package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

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

func (b *Backend) apply(ctx context.Context, c *client, d orchestrator.Deployment) (orchestrator.Observed, error) {
	ns, name := b.opts.Namespace, objectName(d.Key)
	if d.BundleURL == "" || d.BundleToken.IsZero() {
		return orchestrator.Observed{}, errors.New("kubernetes: runtimes fetch their bundle from the control plane, and none is configured")
	}
	existing := &appsv1.Deployment{}
	err := c.get(ctx, resDeployments, ns, name, existing)
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
	if err := b.applyOwned(ctx, c, d, admin, owner); err != nil {
		return orchestrator.Observed{}, err
	}
	pol := b.policyObject(d.Key.InstanceID)
	if err := c.apply(ctx, resPolicies, ns, pol.Name, pol, nil); err != nil {
		return orchestrator.Observed{}, classify("apply", "NetworkPolicy "+ns+"/"+pol.Name, err)
	}
	want, err := b.deploymentObject(d)
	if err != nil {
		return orchestrator.Observed{}, err
	}
	dep := &appsv1.Deployment{}
	if err := c.apply(ctx, resDeployments, ns, name, want, dep); err != nil {
		return orchestrator.Observed{}, classify("apply", "Deployment "+ns+"/"+name, err)
	}
	if owner == nil {
		// The Secret and Service belong to the Deployment from now on:
		// deleting it (by hand, too) lets the cluster collect them.
		owner = ownerOf(dep)
		if err := b.applyOwned(ctx, c, d, admin, owner); err != nil {
			return orchestrator.Observed{}, err
		}
	}
	return b.observe(ctx, c, d.Key, dep, admin)
}

// applyOwned applies the objects the Deployment owns (once it exists):
// the Secret, the Service and, with an ingress domain, the Ingress.
func (b *Backend) applyOwned(ctx context.Context, c *client, d orchestrator.Deployment, admin secret.Value, owner *metav1.OwnerReference) error {
	ns, name := b.opts.Namespace, objectName(d.Key)
	if err := c.apply(ctx, resSecrets, ns, name, b.secretObject(d, admin.Reveal(), owner), nil); err != nil {
		return classify("apply", "Secret "+ns+"/"+name, err)
	}
	if err := c.apply(ctx, resServices, ns, name, b.serviceObject(d.Key, d.UID, owner), nil); err != nil {
		return classify("apply", "Service "+ns+"/"+name, err)
	}
	if b.opts.IngressDomain != "" {
		if err := c.apply(ctx, resIngresses, ns, name, b.ingressObject(d.Key, d.UID, owner), nil); err != nil {
			return classify("apply", "Ingress "+ns+"/"+name, err)
		}
	}
	return nil
}

func ownerOf(dep *appsv1.Deployment) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
}

// adminToken is runtime k's admin credential: from its Secret (made by
// this or an earlier control plane), or a new one.
func (b *Backend) adminToken(ctx context.Context, c *client, k orchestrator.Key) (secret.Value, error) {
	b.mu.Lock()
	tok, ok := b.admin[k]
	b.mu.Unlock()
	if ok {
		return tok, nil
	}
	s := &corev1.Secret{}
	err := c.get(ctx, resSecrets, b.opts.Namespace, objectName(k), s)
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
	dep := &appsv1.Deployment{}
	err = c.get(ctx, resDeployments, b.opts.Namespace, objectName(k), dep)
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
func (b *Backend) observe(ctx context.Context, c *client, k orchestrator.Key, dep *appsv1.Deployment, admin secret.Value) (orchestrator.Observed, error) {
	ns := b.opts.Namespace
	pods, err := list[corev1.Pod](ctx, c, resPods, ns, b.runtimeSelector(k))
	if err != nil {
		return orchestrator.Observed{}, classify("list", "the Pods of "+ns+"/"+dep.Name, err)
	}
	svc := &corev1.Service{}
	err = c.get(ctx, resServices, ns, objectName(k), svc)
	if err != nil && !apierrors.IsNotFound(err) {
		return orchestrator.Observed{}, classify("read", "Service "+ns+"/"+objectName(k), err)
	}
	obs := mapStatus(dep, pods)
	replaced, err := b.replacedRestarts(ctx, c, k, dep, pods)
	if err != nil {
		return orchestrator.Observed{}, err
	}
	obs.Restarts += replaced
	if err == nil && obs.AvailableReplicas > 0 {
		obs.BaseURL = b.serviceURL(svc)
	}
	if b.opts.IngressDomain != "" && obs.AvailableReplicas > 0 {
		// The endpoints name the host the cluster's Ingress holds (read
		// back, not assumed); without it, the Service inside the cluster.
		ing := &networkingv1.Ingress{}
		err := c.get(ctx, resIngresses, ns, objectName(k), ing)
		if err != nil && !apierrors.IsNotFound(err) {
			return orchestrator.Observed{}, classify("read", "Ingress "+ns+"/"+objectName(k), err)
		}
		if u := ingressURL(ing); err == nil && u != "" {
			obs.BaseURL = u
		}
	}
	if len(obs.AdminURLs) > 0 {
		obs.AdminURL, obs.AdminToken = obs.AdminURLs[0], admin
	}
	return obs, nil
}

// replacedRestarts is the restart count of runtime k's pods that are
// gone: AnnRestarts on dep, plus the last seen counts of pods seen before
// and missing (or terminating) now, which it adds to the annotation (a
// merge patch of its own field manager, so the server-side apply of the
// Deployment neither owns nor drops it). A pod that comes and goes
// between two passes, or while no control plane watches, is not counted.
func (b *Backend) replacedRestarts(ctx context.Context, c *client, k orchestrator.Key, dep *appsv1.Deployment, pods []corev1.Pod) (int, error) {
	stored, _ := strconv.Atoi(dep.Annotations[AnnRestarts])
	now := map[string]int{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue // going: counted as gone (mapStatus leaves it out too)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == containerName {
				now[string(p.UID)] = int(cs.RestartCount)
			}
		}
	}
	b.mu.Lock()
	pr := b.pods[k]
	if pr == nil {
		pr = &podRestarts{}
		b.pods[k] = pr
	}
	for uid, n := range pr.seen {
		if _, ok := now[uid]; !ok {
			pr.pending += n
		}
	}
	pr.seen = now
	pending := pr.pending
	b.mu.Unlock()
	if pending == 0 {
		return stored, nil
	}
	total := stored + pending
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{AnnRestarts: strconv.Itoa(total)}}})
	if _, err := c.in(resDeployments, dep.Namespace).Patch(ctx, dep.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager + "-restarts"}); err != nil {
		// Kept pending: the next pass writes it.
		return total, classify("annotate", "Deployment "+dep.Namespace+"/"+dep.Name, err)
	}
	b.mu.Lock()
	pr.pending -= pending
	b.mu.Unlock()
	return total, nil
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
		res  schema.GroupVersionResource
	}{
		{"Deployment", resDeployments},
		{"Service", resServices},
		{"Secret", resSecrets},
		{"Ingress", resIngresses},
	} {
		if del.res == resIngresses && b.opts.IngressDomain == "" {
			continue // none made (and the Role may not grant them)
		}
		if err := c.delete(ctx, del.res, ns, name, bg); err != nil && !apierrors.IsNotFound(err) {
			return classify("delete", del.kind+" "+ns+"/"+name, err)
		}
	}
	b.mu.Lock()
	delete(b.admin, k)
	delete(b.retry, k)
	delete(b.pods, k)
	b.mu.Unlock()
	left, err := list[appsv1.Deployment](ctx, c, resDeployments, ns, b.installSelector()+","+LabelInstance+"="+labelFor(k.InstanceID))
	if err != nil {
		return classify("list", "Deployments", err)
	}
	for _, d := range left {
		if d.Annotations[AnnInstance] == k.InstanceID && d.DeletionTimestamp == nil {
			return nil
		}
	}
	if err := c.delete(ctx, resPolicies, ns, policyName(k.InstanceID), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
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
	seen := map[orchestrator.Key]bool{}
	// Deployments, then Secrets and Services (their metadata is all
	// that is read, so one shape serves the three).
	for _, r := range []struct {
		kind string
		res  schema.GroupVersionResource
	}{{"Deployments", resDeployments}, {"Secrets", resSecrets}, {"Services", resServices}, {"Ingresses", resIngresses}} {
		if r.res == resIngresses && b.opts.IngressDomain == "" {
			continue
		}
		objs, err := list[metav1.PartialObjectMetadata](ctx, c, r.res, b.opts.Namespace, b.installSelector())
		if err != nil {
			return nil, classify("list", r.kind, err)
		}
		for _, o := range objs {
			m := o.ObjectMeta
			k := orchestrator.Key{InstanceID: m.Annotations[AnnInstance], Name: m.Annotations[AnnRuntime]}
			if k.InstanceID != "" && k.Name != "" && m.Name == objectName(k) {
				seen[k] = true
			}
		}
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
