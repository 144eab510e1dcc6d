package kubernetes

// These tests run against a real kube-apiserver and etcd (package
// kubetest): objects are validated, admitted (RBAC, quota) and stored as a
// cluster would. No kubelet, scheduler or controller manager runs, so no
// pod ever starts and no Deployment status changes by itself: where a
// test needs a rollout to progress, a pod to be ready or to crash-loop,
// it writes that status itself, as envtest users do.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/kubetest"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

var ctx = context.Background()

func newBackend(t *testing.T, cfg *rest.Config, ns string, clk *clocktest.Fake) *Backend {
	t.Helper()
	b, err := New(Options{Config: cfg, Namespace: ns, Image: "registry.example/sluice:test", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func deployment(k orchestrator.Key, gen int64, replicas int) orchestrator.Deployment {
	return orchestrator.Deployment{Key: k, UID: "uid-" + k.Name, Generation: gen, Replicas: replicas,
		BundleURL:   orchestrator.BundleURL("http://sluice.sluice.svc:8443", "uid-"+k.Name, gen),
		BundleToken: secret.New("slrt_token-of-generation-" + itoa(gen))}
}

// markRolledOut writes the Deployment status its controller would once
// every replica of the current template is available.
func markRolledOut(t *testing.T, c kclient.Interface, ns, name string) {
	t.Helper()
	dep, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := *dep.Spec.Replicas
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"}}}
	if _, err := c.AppsV1().Deployments(ns).UpdateStatus(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// addPod creates a pod as the ReplicaSet controller would (the template's
// labels) and writes the status a kubelet would report.
func addPod(t *testing.T, c kclient.Interface, ns, name string, dep *appsv1.Deployment, status corev1.PodStatus) {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: dep.Spec.Template.Labels}, Spec: dep.Spec.Template.Spec}
	p, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status = status
	if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func readyPod(ip string) corev1.PodStatus {
	return corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "runtime", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
}

func getDeployment(t *testing.T, c kclient.Interface, ns string, k orchestrator.Key) *appsv1.Deployment {
	t.Helper()
	dep, err := c.AppsV1().Deployments(ns).Get(ctx, objectName(k), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return dep
}

func TestCreateMakesDeploymentServiceSecret(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	b := newBackend(t, cl.Config, ns, clocktest.New(0))
	k := orchestrator.Key{InstanceID: "inst-a", Name: "Orders_API"}
	d := deployment(k, 1, 2)
	d.Resources = &orchestrator.Resources{Limits: map[string]string{"cpu": "1", "memory": "512Mi"}, Requests: map[string]string{"cpu": "250m"}}
	obs, err := b.Apply(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if obs.AvailableReplicas != 0 || !obs.Progressing || obs.Generation != 0 {
		t.Errorf("before any pod is ready: %+v", obs)
	}
	dep := getDeployment(t, cl.Client, ns, k)
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d", *dep.Spec.Replicas)
	}
	ru := dep.Spec.Strategy.RollingUpdate
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("strategy %+v", dep.Spec.Strategy)
	}
	for key, want := range map[string]string{LabelInstance: "inst-a", LabelRuntime: "Orders_API", LabelGen: "1", LabelRole: "runtime"} {
		if got := dep.Spec.Template.Labels[key]; got != want {
			t.Errorf("pod label %s = %q, want %q", key, got, want)
		}
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Port.String() != "admin" {
		t.Errorf("probes %+v %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if q := c.Resources.Limits[corev1.ResourceMemory]; q.Cmp(resource.MustParse("512Mi")) != 0 {
		t.Errorf("memory limit %v", c.Resources.Limits)
	}
	if q := c.Resources.Requests[corev1.ResourceCPU]; q.Cmp(resource.MustParse("250m")) != 0 {
		t.Errorf("cpu request %v", c.Resources.Requests)
	}
	if sc := c.SecurityContext; sc == nil || !*sc.ReadOnlyRootFilesystem || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation {
		t.Errorf("container security context %+v", sc)
	}
	if ps := dep.Spec.Template.Spec.SecurityContext; ps == nil || !*ps.RunAsNonRoot || *ps.RunAsUser == 0 {
		t.Errorf("pod security context %+v", ps)
	}
	if *dep.Spec.Template.Spec.AutomountServiceAccountToken {
		t.Error("runtime pods get a service account token")
	}
	args := strings.Join(c.Args, " ")
	if !strings.Contains(args, "--bundle-url "+d.BundleURL) || strings.Contains(args, "slrt_") {
		t.Errorf("args %q: want the bundle URL and no token", args)
	}
	s, err := cl.Client.CoreV1().Secrets(ns).Get(ctx, objectName(k), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data[keyBundleToken]) != d.BundleToken.Reveal() || !strings.HasPrefix(string(s.Data[keyAdminToken]), "slra_") {
		t.Errorf("secret keys %v", slices.Collect(mapsKeys(s.Data)))
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != dep.UID {
		t.Errorf("secret owners %+v", s.OwnerReferences)
	}
	svc, err := cl.Client.CoreV1().Services(ns).Get(ctx, objectName(k), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Selector[LabelRuntimeID] != objectName(k) || svc.Spec.Ports[0].Port != FlowPort || len(svc.OwnerReferences) != 1 {
		t.Errorf("service %+v", svc.Spec)
	}

	// The Deployment controller and kubelets are played by the test: two
	// ready pods, the rollout complete.
	addPod(t, cl.Client, ns, "p1", dep, readyPod("10.1.0.7"))
	addPod(t, cl.Client, ns, "p2", dep, readyPod("10.1.0.8"))
	markRolledOut(t, cl.Client, ns, objectName(k))
	obs, err = b.Apply(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if obs.Generation != 1 || obs.AvailableReplicas != 2 || obs.Replicas != 2 || obs.Progressing {
		t.Errorf("rolled out: %+v", obs)
	}
	if want := "http://" + objectName(k) + "." + ns + ".svc:7800"; obs.BaseURL != want {
		t.Errorf("base URL %q, want %q (from the Service)", obs.BaseURL, want)
	}
	if obs.AdminURL != "http://10.1.0.7:7600" || len(obs.AdminURLs) != 2 || obs.AdminToken.Reveal() != string(s.Data[keyAdminToken]) {
		t.Errorf("admin %q %v", obs.AdminURL, obs.AdminURLs)
	}
	// A pass that changes nothing writes nothing (server-side apply).
	rv := getDeployment(t, cl.Client, ns, k).ResourceVersion
	if _, err := b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := getDeployment(t, cl.Client, ns, k).ResourceVersion; got != rv {
		t.Errorf("an unchanged Apply rewrote the Deployment (%s → %s)", rv, got)
	}
}

func mapsKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestScaleAndRolloutOfANewGeneration(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	b := newBackend(t, cl.Config, ns, clocktest.New(0))
	k := orchestrator.Key{InstanceID: "inst-a", Name: "orders"}
	if _, err := b.Apply(ctx, deployment(k, 1, 1)); err != nil {
		t.Fatal(err)
	}
	dep1 := getDeployment(t, cl.Client, ns, k)
	addPod(t, cl.Client, ns, "old-1", dep1, readyPod("10.1.0.1"))
	markRolledOut(t, cl.Client, ns, objectName(k))

	// A new generation (here: scaled to 3) changes the pod template, so
	// the Deployment rolls over; until the new pods are ready the old
	// generation serves.
	d2 := deployment(k, 2, 3)
	obs, err := b.Apply(ctx, d2)
	if err != nil {
		t.Fatal(err)
	}
	dep2 := getDeployment(t, cl.Client, ns, k)
	if *dep2.Spec.Replicas != 3 || dep2.Spec.Template.Labels[LabelGen] != "2" || dep2.Generation == dep1.Generation {
		t.Fatalf("generation 2: replicas %d, template generation %s, object generation %d→%d",
			*dep2.Spec.Replicas, dep2.Spec.Template.Labels[LabelGen], dep1.Generation, dep2.Generation)
	}
	if !slices.Contains(dep2.Spec.Template.Spec.Containers[0].Args, d2.BundleURL) {
		t.Errorf("generation 2 pods fetch %v", dep2.Spec.Template.Spec.Containers[0].Args)
	}
	if obs.Generation != 1 || !obs.Progressing || obs.AvailableReplicas != 1 {
		t.Errorf("during the rollout: %+v (want generation 1 serving, progressing)", obs)
	}
	s, _ := cl.Client.CoreV1().Secrets(ns).Get(ctx, objectName(k), metav1.GetOptions{})
	if string(s.Data[keyBundleToken]) != d2.BundleToken.Reveal() {
		t.Error("the Secret still holds generation 1's bundle token")
	}
	for i, ip := range []string{"10.1.0.2", "10.1.0.3", "10.1.0.4"} {
		addPod(t, cl.Client, ns, "new-"+itoa(int64(i)), dep2, readyPod(ip))
	}
	if err := cl.Client.CoreV1().Pods(ns).Delete(ctx, "old-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	markRolledOut(t, cl.Client, ns, objectName(k))
	obs, err = b.Apply(ctx, d2)
	if err != nil {
		t.Fatal(err)
	}
	if obs.Generation != 2 || obs.Progressing || obs.AvailableReplicas != 3 || len(obs.AdminURLs) != 3 {
		t.Errorf("after the rollout: %+v", obs)
	}

	// Scaled to 0: the Deployment keeps existing with no replicas.
	if _, err := b.Apply(ctx, deployment(k, 3, 0)); err != nil {
		t.Fatal(err)
	}
	if n := *getDeployment(t, cl.Client, ns, k).Spec.Replicas; n != 0 {
		t.Errorf("stopped runtime has %d replicas", n)
	}
}

func TestCrashLoopingPodStatus(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	b := newBackend(t, cl.Config, ns, clocktest.New(0))
	k := orchestrator.Key{InstanceID: "inst-a", Name: "crashy"}
	if _, err := b.Apply(ctx, deployment(k, 1, 1)); err != nil {
		t.Fatal(err)
	}
	dep := getDeployment(t, cl.Client, ns, k)
	// What a kubelet reports of a container that exits at start, again
	// and again.
	addPod(t, cl.Client, ns, "crashy-1", dep, corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.9",
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "runtime", RestartCount: 4,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error",
				Message: "starting\nruntime: bundle fetch refused: 403 Forbidden\n"}}}}})
	obs, err := b.Observe(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if !obs.Restarting || obs.Restarts != 4 || obs.AvailableReplicas != 0 || obs.CannotRun != "" {
		t.Errorf("crash-looping: %+v", obs)
	}
	want := "pod crashy-1 restarted 4 times (CrashLoopBackOff); last exit code 1 (Error): runtime: bundle fetch refused: 403 Forbidden"
	if obs.LastError != want {
		t.Errorf("last error %q\nwant %q", obs.LastError, want)
	}

	// An image that cannot be pulled is no crash: the runtime cannot run.
	addPod(t, cl.Client, ns, "crashy-2", dep, corev1.PodStatus{Phase: corev1.PodPending,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "runtime",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "registry.example/sluice:test"`}}}}})
	obs, err = b.Observe(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(obs.CannotRun, `pod crashy-2: ImagePullBackOff: Back-off pulling image "registry.example/sluice:test"`) {
		t.Errorf("cannot run: %q", obs.CannotRun)
	}
}

func TestDeleteRemovesWhatTheRuntimeOwns(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	b := newBackend(t, cl.Config, ns, clocktest.New(0))
	a1 := orchestrator.Key{InstanceID: "inst-a", Name: "one"}
	a2 := orchestrator.Key{InstanceID: "inst-a", Name: "two"}
	other := orchestrator.Key{InstanceID: "inst-b", Name: "one"}
	for _, k := range []orchestrator.Key{a1, a2, other} {
		if _, err := b.Apply(ctx, deployment(k, 1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := b.List(ctx)
	if err != nil || len(keys) != 3 {
		t.Fatalf("list %v %v", keys, err)
	}
	if err := b.Delete(ctx, a1); err != nil {
		t.Fatal(err)
	}
	gone := func(k orchestrator.Key) {
		t.Helper()
		name := objectName(k)
		for kind, err := range map[string]error{
			"Deployment": second(cl.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})),
			"Service":    second(cl.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})),
			"Secret":     second(cl.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})),
		} {
			if !apierrors.IsNotFound(err) {
				t.Errorf("%s of %s after Delete: %v", kind, k, err)
			}
		}
	}
	gone(a1)
	policy := func(inst string) error {
		_, err := cl.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, policyName(inst), metav1.GetOptions{})
		return err
	}
	if err := policy("inst-a"); err != nil {
		t.Errorf("the instance's policy went while a runtime of it is left: %v", err)
	}
	if err := b.Delete(ctx, a2); err != nil {
		t.Fatal(err)
	}
	gone(a2)
	if err := policy("inst-a"); !apierrors.IsNotFound(err) {
		t.Errorf("the instance's policy outlived its last runtime: %v", err)
	}
	if err := policy("inst-b"); err != nil {
		t.Errorf("another instance's policy: %v", err)
	}
	if err := b.Delete(ctx, a2); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
	if keys, _ := b.List(ctx); !slices.Equal(keys, []orchestrator.Key{other}) {
		t.Errorf("left: %v", keys)
	}
}

func second[T any](_ T, err error) error { return err }

// A control plane that restarts makes a new Backend: it finds the
// runtimes by their labels and takes them over as they are.
func TestReadoptionAfterControlPlaneRestart(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	k := orchestrator.Key{InstanceID: "inst-a", Name: "orders"}
	first := newBackend(t, cl.Config, ns, clocktest.New(0))
	d := deployment(k, 4, 1)
	if _, err := first.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	dep := getDeployment(t, cl.Client, ns, k)
	addPod(t, cl.Client, ns, "p", dep, readyPod("10.1.0.5"))
	markRolledOut(t, cl.Client, ns, objectName(k))
	before, err := first.Observe(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	// Objects of another installation in the same namespace are not ours.
	foreign, err := New(Options{Config: cl.Config, Namespace: ns, Image: "x", Install: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := foreign.Apply(ctx, deployment(orchestrator.Key{InstanceID: "inst-z", Name: "theirs"}, 1, 1)); err != nil {
		t.Fatal(err)
	}

	restarted := newBackend(t, cl.Config, ns, clocktest.New(0))
	keys, err := restarted.List(ctx)
	if err != nil || !slices.Equal(keys, []orchestrator.Key{k}) {
		t.Fatalf("after restart: list %v, %v", keys, err)
	}
	after, err := restarted.Observe(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != 4 || after.AvailableReplicas != 1 || after.AdminToken.Reveal() != before.AdminToken.Reveal() {
		t.Errorf("adopted: %+v (admin credential kept: %v)", after, after.AdminToken.Equal(before.AdminToken))
	}
	rv := getDeployment(t, cl.Client, ns, k).ResourceVersion
	if _, err := restarted.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := getDeployment(t, cl.Client, ns, k); got.ResourceVersion != rv {
		t.Errorf("adoption rewrote the Deployment (%s → %s): its pods would roll", rv, got.ResourceVersion)
	}
}

// RBAC refusals, quota refusals and an unusable kubeconfig become a
// ClusterError that says what the cluster answered; the runtime is not
// tried again before its backoff ends, and recovers once the cluster
// accepts.
func TestClusterRefusalsAreReportedAndRetried(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	clk := clocktest.New(0)
	var calls atomic.Int64
	cfg := cl.ConfigFor(kubetest.RestrictedUser)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls.Add(1)
			return rt.RoundTrip(r)
		})
	}
	b := newBackend(t, cfg, ns, clk)
	k := orchestrator.Key{InstanceID: "inst-a", Name: "orders"}
	_, err := b.Apply(ctx, deployment(k, 1, 1))
	var ce *orchestrator.ClusterError
	if !errors.As(err, &ce) || ce.Reason != "Forbidden" || !strings.Contains(ce.Message, kubetest.RestrictedUser) ||
		!strings.Contains(ce.Message, "retrying in 1s") {
		t.Fatalf("forbidden: %#v", err)
	}
	n := calls.Load()
	if _, err := b.Apply(ctx, deployment(k, 1, 1)); !errors.As(err, &ce) || calls.Load() != n {
		t.Errorf("within the backoff: %v, %d more calls", err, calls.Load()-n)
	}
	clk.Add(time.Second)
	_, err = b.Apply(ctx, deployment(k, 1, 1))
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "retrying in 2s") {
		t.Errorf("second failure: %v", err)
	}

	// The RBAC the manifests grant the backend (deploy/kubernetes) lets it in.
	grant(t, cl.Client, ns, kubetest.RestrictedUser)
	clk.Add(2 * time.Second)
	if _, err := b.Apply(ctx, deployment(k, 1, 1)); err != nil {
		t.Fatalf("after the grant: %v", err)
	}

	// Over quota: the quota admission plugin refuses the new Service (the
	// test writes the quota's status, as the quota controller would).
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-more-services"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/services": resource.MustParse("1")}}}
	q, err = cl.Client.CoreV1().ResourceQuotas(ns).Create(ctx, q, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q.Status = corev1.ResourceQuotaStatus{Hard: q.Spec.Hard, Used: corev1.ResourceList{"count/services": resource.MustParse("1")}}
	if _, err := cl.Client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	k2 := orchestrator.Key{InstanceID: "inst-a", Name: "second"}
	_, err = b.Apply(ctx, deployment(k2, 1, 1))
	if !errors.As(err, &ce) || ce.Reason != "QuotaExceeded" || !strings.Contains(ce.Message, "exceeded quota: no-more-services") {
		t.Errorf("over quota: %v", err)
	}

	// A kubeconfig that does not load is the same kind of answer.
	bad, err := New(Options{Kubeconfig: t.TempDir() + "/missing", Namespace: ns, Image: "x", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Apply(ctx, deployment(k, 1, 1))
	if !errors.As(err, &ce) || ce.Reason != "ConfigInvalid" || !strings.Contains(ce.Message, "missing") {
		t.Errorf("bad kubeconfig: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// grant binds to user the Role the control plane needs over runtimes.
func grant(t *testing.T, c kclient.Interface, ns, user string) {
	t.Helper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "sluice-runtimes"}, Rules: RBACRules()}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sluice-runtimes"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "sluice-runtimes"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}}}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The API server's RBAC authorizer reads roles and bindings from its
	// informers, so a grant bites only once they have caught up (a moment,
	// longer on a loaded machine). A SubjectAccessReview asks that same
	// authorizer: once it allows, the user's own requests are allowed.
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Group: "apps", Resource: "deployments"}}}
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		got, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed {
			return
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the grant to %s in %s is not in force after 30s: %+v", user, ns, got.Status)
		}
	}
}

func TestLogsSayWhatTheClusterAnswers(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	b := newBackend(t, cl.Config, ns, clocktest.New(0))
	k := orchestrator.Key{InstanceID: "inst-a", Name: "logs"}
	if _, err := b.Apply(ctx, deployment(k, 1, 1)); err != nil {
		t.Fatal(err)
	}
	dep := getDeployment(t, cl.Client, ns, k)
	addPod(t, cl.Client, ns, "logs-1", dep, readyPod("10.1.0.3"))
	// A pod bound to a node the cluster does not know (no kubelet runs
	// here): the API server cannot reach a kubelet for its log.
	onNode := dep.DeepCopy()
	onNode.Spec.Template.Spec.NodeName = "node-gone"
	addPod(t, cl.Client, ns, "logs-2", onNode, readyPod("10.1.0.4"))
	rc, err := b.Logs(ctx, k, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(rc)
	rc.Close()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] != "[logs-1] no log yet: the pod is not scheduled to a node" ||
		!strings.HasPrefix(lines[1], "[logs-2] log unavailable: the cluster, asked to read the log of pod logs-2,") ||
		!strings.Contains(lines[1], "node-gone") {
		t.Errorf("logs:\n%s", out)
	}
}
