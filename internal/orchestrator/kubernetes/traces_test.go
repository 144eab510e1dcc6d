package kubernetes

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/kubetest"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Traces of a runtime on Kubernetes go through its pods' admin port
// (7600) at their pod IP, with the admin credential of its Secret. No
// kubelet runs here, so the test plays one: it starts a real `sluice
// runtime` process the way the Deployment's pod would (its bundle URL,
// with the bundle token and admin token of the runtime's Secret), with
// its admin listener on a loopback address, and writes the Pod's status
// with that address as its pod IP. The control plane then reaches the
// "pod" as it would reach one in a cluster.
func TestTracesThroughThePodsAdminPort(t *testing.T) {
	cl := kubetest.Shared(t)
	ns := cl.Namespace(t)
	kubeconfig, err := cl.Kubeconfig(t.TempDir(), kubetest.RestrictedUser)
	if err != nil {
		t.Fatal(err)
	}
	grant(t, cl.Client, ns, kubetest.RestrictedUser)
	s := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "kubernetes", "--kubeconfig", kubeconfig,
		"--kube-namespace", ns, "--kube-image", "registry.example/sluice:e2e", "--kube-bundle-url", "http://sluice." + ns + ".svc:8081"}})
	admin := s.Admin(t)
	barURL := uploadHello(t, s, admin)
	rt := map[string]any{"metadata": map[string]any{"name": "hello"}, "spec": map[string]any{"barURL": []string{barURL}, "replicas": 1}}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/hello", rt); code != 201 {
		t.Fatalf("PUT runtime: %d %s", code, body)
	}
	k := keyOf(t, cl, ns)
	name := objectName(k)
	dep := getDeployment(t, cl.Client, ns, k)
	sec, err := cl.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The "pod": its arguments' bundle URL, aimed at the control plane as
	// this test reaches it, and the credential files of its Secret.
	dir := t.TempDir()
	for key, file := range map[string]string{keyBundleToken: "bundle-token", keyAdminToken: "admin-token"} {
		if err := os.WriteFile(filepath.Join(dir, file), sec.Data[key], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	u, _ := url.Parse(argOf(dep, "--bundle-url"))
	podIP := freeLoopbackIP(t, AdminPort)
	flowAddr := servertest.FreeAddr(t)
	cmd := exec.Command(servertest.Binary(t), "runtime", "--bundle-url", s.URL+u.Path,
		"--bundle-token-file", filepath.Join(dir, "bundle-token"), "--bundle-dir", filepath.Join(dir, "bundle"),
		"--listen", flowAddr, "--admin-listen", net.JoinHostPort(podIP, strconv.Itoa(AdminPort)),
		"--admin-token-file", filepath.Join(dir, "admin-token"))
	var out servertest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	adminBase := adminURL(podIP)
	await(t, "the runtime process to be ready", func() (bool, string) {
		resp, err := http.Get(adminBase + "/readyz")
		if err != nil {
			return false, err.Error() + "\n" + out.String()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status + "\n" + out.String()
	})
	// Its admin listener wants the credential: without it, nothing.
	if resp, err := http.Get(adminBase + "/trace/user"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("the admin port without the credential: %v %v", resp, err)
	}

	addPod(t, cl.Client, ns, "hello-a", dep, readyPod(podIP))
	markRolledOut(t, cl.Client, ns, name)
	await(t, "Ready", func() (bool, string) {
		code, body := admin.Do("GET", "/api/v1/integration-runtimes/hello", nil)
		var r apiRuntime
		json.Unmarshal(body, &r)
		return code == 200 && r.Status.Phase == "Ready", string(body)
	})

	trace := map[string]any{"metadata": map[string]any{"name": "t1"}, "spec": map[string]any{"integrationRuntimeName": "hello", "type": "user"}}
	if code, body := admin.Do("PUT", "/api/v1/traces/t1", trace); code != 201 {
		t.Fatalf("PUT trace: %d %s", code, body)
	}
	resp, err := http.Get("http://" + flowAddr + "/hello/kube")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the flow answered %d", resp.StatusCode)
	}
	await(t, "the trace to hold the call", func() (bool, string) {
		code, body := admin.Do("GET", "/api/v1/traces/t1", nil)
		var tr struct {
			Status struct {
				State  string
				Events int
			}
		}
		json.Unmarshal(body, &tr)
		return code == 200 && tr.Status.Events > 0, fmt.Sprintf("%d %s", code, body)
	})
	code, body := admin.Do("GET", "/api/v1/traces/t1/download", nil)
	if code != 200 {
		t.Fatalf("download: %d %s", code, body)
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("the trace is not a zip: %v", err)
	}
	var all []byte
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		all = append(all, b...)
	}
	if !strings.Contains(string(all), "hello") || !strings.Contains(string(all), "kube") {
		t.Errorf("the trace does not show the call: %s", all)
	}
	if code, body := admin.Do("DELETE", "/api/v1/traces/t1", nil); code != 204 {
		t.Errorf("DELETE trace: %d %s", code, body)
	}
}

// freeLoopbackIP is an address of 127.0.0.0/8 on which port is free
// (the admin port is fixed, as in a pod; other tests may hold it on
// 127.0.0.1).
func freeLoopbackIP(t *testing.T, port int) string {
	t.Helper()
	for range 50 {
		ip := fmt.Sprintf("127.%d.%d.%d", 10+rand.IntN(200), rand.IntN(250), 1+rand.IntN(250))
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err == nil {
			ln.Close()
			return ip
		}
	}
	t.Fatal("no loopback address with the admin port free")
	return ""
}
