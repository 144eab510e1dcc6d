package kubernetes

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/kubetest"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type apiRuntime struct {
	Status struct {
		Phase             string
		Replicas          int
		AvailableReplicas int
		Conditions        []struct{ Type, Status, Reason, Message string }
		Endpoints         []struct{ URI string }
	}
}

func (r apiRuntime) condition(typ string) (status, reason, msg string) {
	for _, c := range r.Status.Conditions {
		if c.Type == typ {
			return c.Status, c.Reason, c.Message
		}
	}
	return "", "", ""
}

// await polls fn until it reports done, failing after a generous bound
// (the reconciler runs on the wall clock here: this waits, it asserts
// nothing about time).
func await(t *testing.T, what string, fn func() (bool, string)) {
	t.Helper()
	last := ""
	for range 600 {
		ok, s := fn()
		if ok {
			return
		}
		last = s
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("waiting for %s; last seen: %s", what, last)
}

// The public API drives the cluster: a runtime PUT becomes a Deployment,
// its pods' bundle credential opens its bundle at the control plane, and
// (the test playing the kubelets and the Deployment controller) its status
// turns Ready with endpoints from its Service. The control plane's
// identity starts without any RBAC grant (the runtime says what the
// cluster answered) and gets exactly RBACRules, what deploy/kubernetes
// grants. A restarted control plane adopts the Deployment as it is;
// deleting the runtime deletes its objects.
func TestPublicAPIRuntimeOnKubernetes(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	kubeconfig, err := cl.Kubeconfig(t.TempDir(), kubetest.RestrictedUser)
	if err != nil {
		t.Fatal(err)
	}
	s := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "kubernetes", "--kubeconfig", kubeconfig,
		"--kube-namespace", ns, "--kube-image", "registry.example/sluice:e2e", "--kube-bundle-url", "http://sluice-runtimes." + ns + ".svc:8080"}})
	admin := s.Admin(t)
	barURL := uploadHello(t, s, admin)
	rt := map[string]any{"metadata": map[string]any{"name": "hello"}, "spec": map[string]any{
		"barURL": []string{barURL}, "replicas": 2,
		"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "runtime",
			"resources": map[string]any{"limits": map[string]any{"memory": "256Mi"}}}}}}}}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/hello", rt); code != 201 {
		t.Fatalf("PUT runtime: %d %s", code, body)
	}
	get := func() apiRuntime {
		code, body := admin.Do("GET", "/api/v1/integration-runtimes/hello", nil)
		if code != 200 {
			t.Fatalf("GET runtime: %d %s", code, body)
		}
		var r apiRuntime
		json.Unmarshal(body, &r)
		return r
	}

	// No RBAC yet: the runtime says what the cluster answered.
	await(t, "the Forbidden condition", func() (bool, string) {
		r := get()
		st, reason, msg := r.condition("ClusterAccepted")
		return st == "False" && reason == "Forbidden" && strings.Contains(msg, kubetest.RestrictedUser), fmt.Sprintf("%+v", r.Status)
	})
	grant(t, cl.Client, ns, kubetest.RestrictedUser)

	k := keyOf(t, cl, ns)
	name := objectName(k)
	dep := getDeployment(t, cl.Client, ns, k)
	if *dep.Spec.Replicas != 2 || dep.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String() != "256Mi" {
		t.Errorf("Deployment: replicas %d, limits %v", *dep.Spec.Replicas, dep.Spec.Template.Spec.Containers[0].Resources.Limits)
	}
	if r := get(); r.Status.Phase == "Ready" {
		t.Fatalf("Ready before any pod is: %+v", r.Status)
	}

	// What a pod does first: fetch its bundle from the control plane with
	// the token of its Secret, from the URL of its arguments (here, on the
	// control plane's address as this test reaches it).
	sec, err := cl.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(argOf(dep, "--bundle-url"))
	breq, _ := http.NewRequest("GET", s.URL+u.Path, nil)
	breq.Header.Set("Authorization", "Bearer "+string(sec.Data[keyBundleToken]))
	bresp, err := http.DefaultClient.Do(breq)
	if err != nil {
		t.Fatal(err)
	}
	zipped, _ := io.ReadAll(bresp.Body)
	bresp.Body.Close()
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if bresp.StatusCode != 200 || err != nil {
		t.Fatalf("bundle with the pod's credential: %d %v", bresp.StatusCode, err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "bars/") && strings.HasSuffix(n, ".bar") }) {
		t.Fatalf("the bundle holds %v, no BAR file", names)
	}

	// The kubelets and the Deployment controller, played by the test.
	addPod(t, cl.Client, ns, "hello-a", dep, readyPod("10.2.0.1"))
	addPod(t, cl.Client, ns, "hello-b", dep, readyPod("10.2.0.2"))
	markRolledOut(t, cl.Client, ns, name)
	await(t, "Ready", func() (bool, string) {
		r := get()
		return r.Status.Phase == "Ready", fmt.Sprintf("%+v", r.Status)
	})
	r := get()
	if r.Status.AvailableReplicas != 2 || len(r.Status.Endpoints) == 0 ||
		!strings.HasPrefix(r.Status.Endpoints[0].URI, "http://"+name+"."+ns+".svc:7800/") {
		t.Errorf("Ready runtime: %+v", r.Status)
	}
	if st, _, _ := r.condition("ClusterAccepted"); st != "True" {
		t.Errorf("ClusterAccepted after the grant: %q", st)
	}

	// A restarted control plane adopts the Deployment without touching it.
	rv := getDeployment(t, cl.Client, ns, k).ResourceVersion
	if err := s.Stop(); err != nil {
		t.Fatalf("stopping the control plane: %v", err)
	}
	s.Restart()
	admin = s.Admin(t)
	await(t, "Ready after the restart", func() (bool, string) {
		r := get()
		return r.Status.Phase == "Ready", fmt.Sprintf("%+v", r.Status)
	})
	if got := getDeployment(t, cl.Client, ns, k).ResourceVersion; got != rv {
		t.Errorf("the restarted control plane rewrote the Deployment (%s → %s)", rv, got)
	}

	if code, body := admin.Do("DELETE", "/api/v1/integration-runtimes/hello", nil); code != 204 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	await(t, "the objects to go", func() (bool, string) {
		_, e1 := cl.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		_, e2 := cl.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		pols, e3 := cl.Client.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
		return apierrors.IsNotFound(e1) && apierrors.IsNotFound(e2) && e3 == nil && len(pols.Items) == 0, fmt.Sprint(e1, e2, e3)
	})
}

// uploadHello uploads examples/hello as BAR file hello.bar and returns
// its URL.
func uploadHello(t *testing.T, s *servertest.Server, admin *servertest.Client) string {
	t.Helper()
	hello, _, err := bar.Build(ctx, filepath.Join("..", "..", "..", "examples", "hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", s.URL+"/api/v1/bar-files/hello.bar", bytes.NewReader(hello))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+admin.Token)
	req.Header.Set("X-IBM-Client-Id", admin.ClientID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var uploaded struct{ URL string }
	json.NewDecoder(resp.Body).Decode(&uploaded)
	resp.Body.Close()
	if resp.StatusCode != 201 || uploaded.URL == "" {
		t.Fatalf("BAR upload: %d", resp.StatusCode)
	}
	return uploaded.URL
}

// argOf is the value of flag in the runtime container's arguments.
func argOf(dep *appsv1.Deployment, flag string) string {
	args := dep.Spec.Template.Spec.Containers[0].Args
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// keyOf finds the one runtime's key from its Deployment's annotations.
func keyOf(t *testing.T, cl *kubetest.Cluster, ns string) orchestrator.Key {
	t.Helper()
	var k orchestrator.Key
	await(t, "a runtime Deployment", func() (bool, string) {
		deps, err := cl.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(deps.Items) != 1 {
			return false, fmt.Sprint(err)
		}
		k = orchestrator.Key{InstanceID: deps.Items[0].Annotations[AnnInstance], Name: deps.Items[0].Annotations[AnnRuntime]}
		return true, ""
	})
	return k
}
