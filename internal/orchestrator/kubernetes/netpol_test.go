package kubernetes

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/kubetest"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// peerMatches evaluates one NetworkPolicy peer the way the policy API
// defines it (a pod selector alone: the policy's namespace; with a
// namespace selector: the namespaces it selects). No network plugin runs
// here, so the policy read back from the API server is evaluated by this
// function rather than enforced by a data plane.
func peerMatches(t *testing.T, p networkingv1.NetworkPolicyPeer, policyNS, podNS string, pod map[string]string) bool {
	t.Helper()
	if p.IPBlock != nil {
		return false // pods are judged by selectors; ipBlocks are for addresses outside the cluster
	}
	if p.NamespaceSelector == nil {
		if podNS != policyNS {
			return false
		}
	} else {
		sel, err := metav1.LabelSelectorAsSelector(p.NamespaceSelector)
		if err != nil {
			t.Fatal(err)
		}
		if !sel.Matches(labels.Set{"kubernetes.io/metadata.name": podNS}) {
			return false
		}
	}
	if p.PodSelector == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(p.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	return sel.Matches(labels.Set(pod))
}

type pod struct {
	ns     string
	labels map[string]string
}

// allowed reports whether traffic from src to dst on port passes dst's
// ingress rules and src's egress rules, given every policy (by the pods
// each selects).
func allowed(t *testing.T, policies []networkingv1.NetworkPolicy, src, dst pod, port int32) bool {
	t.Helper()
	selects := func(pol networkingv1.NetworkPolicy, p pod) bool {
		sel, err := metav1.LabelSelectorAsSelector(&pol.Spec.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		return pol.Namespace == p.ns && sel.Matches(labels.Set(p.labels))
	}
	portOK := func(ports []networkingv1.NetworkPolicyPort) bool {
		if len(ports) == 0 {
			return true
		}
		for _, pp := range ports {
			if pp.Port == nil || pp.Port.IntVal == port {
				return true
			}
		}
		return false
	}
	in, out := true, true
	for _, pol := range policies {
		if selects(pol, dst) {
			in = false
			for _, r := range pol.Spec.Ingress {
				for _, peer := range r.From {
					if portOK(r.Ports) && peerMatches(t, peer, pol.Namespace, src.ns, src.labels) {
						in = true
					}
				}
			}
		}
	}
	for _, pol := range policies {
		if selects(pol, src) {
			out = false
			for _, r := range pol.Spec.Egress {
				if len(r.To) == 0 && portOK(r.Ports) {
					out = true
				}
				for _, peer := range r.To {
					if portOK(r.Ports) && peerMatches(t, peer, pol.Namespace, dst.ns, dst.labels) {
						out = true
					}
				}
			}
		}
	}
	return in && out
}

func TestNetworkPolicyIsolatesInstances(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	b := newBackend(t, cl.Config, ns, clocktest.New(0))
	// What `sluice serve --listen :8080 --bundle-listen :8081` gives it:
	// the bundle listener's port, the API's being another.
	b.opts.BundlePort = 8081
	a1 := orchestrator.Key{InstanceID: "inst-a", Name: "one"}
	a2 := orchestrator.Key{InstanceID: "inst-a", Name: "two"}
	b1 := orchestrator.Key{InstanceID: "inst-b", Name: "one"}
	for _, k := range []orchestrator.Key{a1, a2, b1} {
		if _, err := b.Apply(ctx, deployment(k, 1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := cl.Client.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 {
		t.Fatalf("%d policies, want one per instance", len(list.Items))
	}
	runtime := func(k orchestrator.Key) pod {
		return pod{ns, getDeployment(t, cl.Client, ns, k).Spec.Template.Labels}
	}
	control := pod{ns, map[string]string{LabelRole: RoleControl, LabelName: "sluice"}}
	client := pod{"shop", map[string]string{"app": "storefront"}}
	for _, c := range []struct {
		what     string
		src, dst pod
		port     int32
		want     bool
	}{
		{"same instance, flow port", runtime(a1), runtime(a2), FlowPort, true},
		{"other instance, flow port", runtime(b1), runtime(a1), FlowPort, false},
		{"other instance, admin port", runtime(b1), runtime(a1), AdminPort, false},
		{"same instance, admin port", runtime(a2), runtime(a1), AdminPort, false},
		{"a client pod, flow port", client, runtime(a1), FlowPort, true},
		{"a client pod, admin port", client, runtime(a1), AdminPort, false},
		{"control plane, admin port", control, runtime(a1), AdminPort, true},
		{"runtime to the control plane's bundle port", runtime(a1), control, 8081, true},
		{"runtime to the control plane's API port", runtime(a1), control, 8080, false},
		{"runtime to the control plane's metrics port", runtime(a1), control, 9090, false},
		{"runtime to other pods", runtime(a1), client, 5432, true},
	} {
		if got := allowed(t, list.Items, c.src, c.dst, c.port); got != c.want {
			t.Errorf("%s: allowed %v, want %v", c.what, got, c.want)
		}
	}
}
