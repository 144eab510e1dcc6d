package kubernetes

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/kubetest"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Restarts add up across pod replacements: a pod that goes (deleted,
// replaced) keeps its restarts in the count, through the Deployment's
// annotation, which a new backend (a restarted control plane) reads; an
// Apply that changes nothing leaves the annotation alone.
func TestRestartsCountedAcrossPodReplacements(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	b := newBackend(t, cl.Config, ns, clocktest.New(0))
	k := orchestrator.Key{InstanceID: "inst-a", Name: "flaky"}
	d := deployment(k, 1, 1)
	if _, err := b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	dep := getDeployment(t, cl.Client, ns, k)
	restarted := func(n int32) corev1.PodStatus {
		st := readyPod("10.1.0.7")
		st.ContainerStatuses[0].RestartCount = n
		return st
	}
	restarts := func(b *Backend, want int) {
		t.Helper()
		obs, err := b.Observe(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if obs.Restarts != want {
			t.Errorf("restarts %d, want %d", obs.Restarts, want)
		}
	}
	deletePod := func(name string) {
		t.Helper()
		// Zero grace: no kubelet is here to finish a graceful deletion.
		if err := cl.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
	}
	addPod(t, cl.Client, ns, "flaky-1", dep, restarted(3))
	restarts(b, 3)
	// The pod is replaced (evicted, or its node gone): its 3 stay counted.
	deletePod("flaky-1")
	addPod(t, cl.Client, ns, "flaky-2", dep, restarted(1))
	restarts(b, 4)
	if got := getDeployment(t, cl.Client, ns, k).Annotations[AnnRestarts]; got != "3" {
		t.Errorf("annotation %s = %q, want 3", AnnRestarts, got)
	}
	// The server-side apply of an unchanged spec neither drops the
	// annotation nor rewrites the Deployment.
	rv := getDeployment(t, cl.Client, ns, k).ResourceVersion
	if obs, err := b.Apply(ctx, d); err != nil || obs.Restarts != 4 {
		t.Errorf("apply: restarts %d, %v", obs.Restarts, err)
	}
	if got := getDeployment(t, cl.Client, ns, k); got.ResourceVersion != rv || got.Annotations[AnnRestarts] != "3" {
		t.Errorf("an unchanged Apply rewrote the Deployment (%s → %s) or dropped %s (%q)", rv, got.ResourceVersion, AnnRestarts, got.Annotations[AnnRestarts])
	}

	// A restarted control plane: the count goes on from the annotation,
	// and pods it saw before they went are added.
	b2 := newBackend(t, cl.Config, ns, clocktest.New(0))
	restarts(b2, 4)
	deletePod("flaky-2")
	addPod(t, cl.Client, ns, "flaky-3", dep, restarted(0))
	restarts(b2, 4)
	if got := getDeployment(t, cl.Client, ns, k).Annotations[AnnRestarts]; got != "4" {
		t.Errorf("annotation %s = %q, want 4", AnnRestarts, got)
	}
}
