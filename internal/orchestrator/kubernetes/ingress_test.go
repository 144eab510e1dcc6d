package kubernetes

import (
	"slices"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/kubetest"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// With an ingress domain, each runtime gets an Ingress owned by its
// Deployment, for <object name>.<domain>, routed to its Service; its
// endpoints name the host the Ingress read back from the API server
// holds; List finds a runtime left with only its Ingress, and Delete
// removes it. No ingress controller runs here: nothing serves the host,
// the test checks the objects and what the backend reports.
func TestIngressHostnameWhenConfigured(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	b, err := New(Options{Config: cl.Config, Namespace: ns, Image: "registry.example/sluice:test", Now: clocktest.New(0).Now,
		IngressDomain: "Apps.Example.com.", IngressClass: "nginx", IngressTLSSecret: "wildcard-apps"})
	if err != nil {
		t.Fatal(err)
	}
	k := orchestrator.Key{InstanceID: "inst-a", Name: "Orders_API"}
	d := deployment(k, 1, 1)
	if _, err := b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	host := objectName(k) + ".apps.example.com"
	ing, err := cl.Client.NetworkingV1().Ingresses(ns).Get(ctx, objectName(k), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep := getDeployment(t, cl.Client, ns, k)
	if len(ing.OwnerReferences) != 1 || ing.OwnerReferences[0].UID != dep.UID {
		t.Errorf("ingress owners %+v, want the Deployment", ing.OwnerReferences)
	}
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("ingress class %v", ing.Spec.IngressClassName)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != host {
		t.Fatalf("ingress rules %+v, want host %s", ing.Spec.Rules, host)
	}
	be := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
	if be == nil || be.Name != objectName(k) || be.Port.Name != "http" {
		t.Errorf("ingress backend %+v, want the runtime's Service", be)
	}
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "wildcard-apps" || !slices.Equal(ing.Spec.TLS[0].Hosts, []string{host}) {
		t.Errorf("ingress TLS %+v", ing.Spec.TLS)
	}
	if args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--public-url https://"+host) {
		t.Errorf("the pods' public URL is not the Ingress's: %s", args)
	}

	addPod(t, cl.Client, ns, "p1", dep, readyPod("10.1.0.7"))
	markRolledOut(t, cl.Client, ns, objectName(k))
	obs, err := b.Observe(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if obs.BaseURL != "https://"+host {
		t.Errorf("base URL %q, want https://%s (the Ingress's host)", obs.BaseURL, host)
	}
	// What is reported is what the cluster holds: an Ingress edited by
	// hand to another host (and no TLS) shows until the next Apply puts
	// it back.
	ing.Spec.Rules[0].Host = "orders.shop.example"
	ing.Spec.TLS = nil
	if _, err := cl.Client.NetworkingV1().Ingresses(ns).Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if obs, err = b.Observe(ctx, k); err != nil || obs.BaseURL != "http://orders.shop.example" {
		t.Errorf("after the edit: %q %v", obs.BaseURL, err)
	}
	if obs, err = b.Apply(ctx, d); err != nil || obs.BaseURL != "https://"+host {
		t.Errorf("after Apply: %q %v", obs.BaseURL, err)
	}

	// A runtime whose Ingress is all that is left (a Delete cut short) is
	// still listed, and Delete removes it.
	if err := cl.Client.AppsV1().Deployments(ns).Delete(ctx, objectName(k), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, del := range []func() error{
		func() error {
			return cl.Client.CoreV1().Services(ns).Delete(ctx, objectName(k), metav1.DeleteOptions{})
		},
		func() error { return cl.Client.CoreV1().Secrets(ns).Delete(ctx, objectName(k), metav1.DeleteOptions{}) },
	} {
		if err := del(); err != nil {
			t.Fatal(err)
		}
	}
	if keys, err := b.List(ctx); err != nil || !slices.Equal(keys, []orchestrator.Key{k}) {
		t.Errorf("list with the Ingress left: %v %v", keys, err)
	}
	if err := b.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Client.NetworkingV1().Ingresses(ns).Get(ctx, objectName(k), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Ingress after Delete: %v", err)
	}

	// Options that cannot make a host are refused when the backend is made.
	if _, err := New(Options{Namespace: ns, Image: "x", IngressDomain: "not a domain"}); err == nil {
		t.Error("a bad ingress domain was accepted")
	}
	if _, err := New(Options{Namespace: ns, Image: "x", IngressClass: "nginx"}); err == nil {
		t.Error("an ingress class without a domain was accepted")
	}
}
