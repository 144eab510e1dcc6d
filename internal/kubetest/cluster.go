package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Users of the token-auth file: tokens are fixed, the cluster is local
// and throwaway.
const (
	// AdminUser is in system:masters: RBAC allows it everything.
	AdminUser = "sluice-test-admin"
	// RestrictedUser has no group and no binding: RBAC refuses it
	// everything until a test binds a role to it.
	RestrictedUser = "sluice-test-restricted"
)

var tokens = map[string]string{AdminUser: "kubetest-admin-token", RestrictedUser: "kubetest-restricted-token"}

// Cluster is a running kube-apiserver with its etcd.
type Cluster struct {
	// Config reaches the API server as AdminUser.
	Config *rest.Config
	// Client is a clientset over Config.
	Client kubernetes.Interface
	dir    string
	procs  []*proc
	logs   []string
}

type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// ConfigFor returns a config that authenticates as one of the token file's users.
func (c *Cluster) ConfigFor(user string) *rest.Config {
	cfg := rest.CopyConfig(c.Config)
	cfg.BearerToken = tokens[user]
	return cfg
}

// Kubeconfig writes a kubeconfig file for user under dir and returns its path.
func (c *Cluster) Kubeconfig(dir, user string) (string, error) {
	p := filepath.Join(dir, "kubeconfig-"+user)
	doc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: %s}
current-context: kubetest
`, c.Config.Host, b64(c.Config.CAData), user, tokens[user], user)
	return p, os.WriteFile(p, []byte(doc), 0o600)
}

// Namespace creates a namespace of its own for the test (named after it),
// with the "default" service account a controller manager would have
// made (the ServiceAccount admission plugin wants it for Pods), and
// deletes it when the test ends.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(strings.Trim(nsUnsafe.Replace(t.Name()), "-"))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-") + "-" + strconv.Itoa(int(nsSeq.add()))
	ctx := context.Background()
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: creating namespace %s: %v", name, err)
	}
	if _, err := c.Client.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: creating the default service account: %v", err)
	}
	t.Cleanup(func() { _ = c.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return name
}

var nsUnsafe = strings.NewReplacer("/", "-", "_", "-", " ", "-", ".", "-")

type counter struct {
	mu sync.Mutex
	n  int64
}

func (c *counter) add() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}

var nsSeq counter

// inCI reports whether the tests run in CI, where a missing cluster is a
// failure, not a skip (the convention of test/e2e).
func inCI() bool { return os.Getenv("CI") != "" }

var shared struct {
	once    sync.Once
	cluster *Cluster
	err     error
	skip    string
}

// Shared returns the cluster of this test process, starting it on first
// use; a package using it stops it in TestMain through Main. Without
// etcd or a built kube-apiserver the test is skipped (saying how to get
// them), or fails under CI.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() {
		if _, err := exec.LookPath("etcd"); err != nil {
			shared.skip = "etcd is not installed (apt-get install etcd-server)"
			return
		}
		// The build takes minutes the first time; in CI it happens here
		// when .ci/run did not do it already.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		bin, err := Binary(ctx, inCI(), os.Stderr)
		if errors.Is(err, ErrNotBuilt) {
			shared.skip = err.Error()
			return
		}
		if err != nil {
			shared.err = err
			return
		}
		shared.cluster, shared.err = Start(bin)
	})
	switch {
	case shared.skip != "" && inCI():
		t.Fatalf("kubetest: CI must run the Kubernetes tests: %s", shared.skip)
	case shared.skip != "":
		t.Skipf("kubetest: skipping, no Kubernetes API server: %s", shared.skip)
	case shared.err != nil:
		t.Fatalf("kubetest: %v", shared.err)
	}
	return shared.cluster
}

// Main runs the package's tests and stops the shared cluster after them:
// func TestMain(m *testing.M) { kubetest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		shared.cluster.Stop()
	}
	os.Exit(code)
}

// Start runs etcd and the kube-apiserver at bin on free loopback ports,
// in a temporary directory, and waits until the API server is ready.
func Start(bin string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "sluice-kubetest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := c.run("etcd", "etcd", "--name", "kubetest", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "kubetest="+peerURL); err != nil {
		return nil, err
	}
	if err := writeServiceAccountKeys(dir); err != nil {
		return nil, err
	}
	var authFile bytes.Buffer
	for user, tok := range tokens {
		line := tok + "," + user + "," + user + "-uid"
		if user == AdminUser {
			line += `,"system:masters"`
		}
		authFile.WriteString(line + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), authFile.Bytes(), 0o600); err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	if err := c.run("kube-apiserver", bin,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(ports[2]),
		"--cert-dir", certDir,
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.0.0.0/24",
	); err != nil {
		return nil, err
	}
	host := "https://127.0.0.1:" + strconv.Itoa(ports[2])
	ca, err := waitReady(host, certDir, tokens[AdminUser], c)
	if err != nil {
		return nil, err
	}
	c.Config = &rest.Config{Host: host, BearerToken: tokens[AdminUser], TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		QPS: 200, Burst: 400}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// run starts one process with its output in a log file of the cluster's directory.
func (c *Cluster) run(name, bin string, args ...string) error {
	logPath := filepath.Join(c.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = c.dir
	// Its own process group, so a Ctrl-C of `go test` does not race the
	// cleanup; Stop ends it. Pdeathsig ends it if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kubetest: starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	c.procs = append(c.procs, p)
	c.logs = append(c.logs, logPath)
	return nil
}

// waitReady polls /readyz until the API server answers 200 and returns
// the CA its serving certificate was signed with (self-signed, in certDir).
func waitReady(host, certDir, token string, c *Cluster) ([]byte, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	var last string
	// Under a loaded machine the first start (etcd, then the API server's
	// bootstrap) takes far longer than the 3 s an idle one needs.
	for i := 0; i < 600; i++ {
		for _, p := range c.procs {
			select {
			case <-p.exited:
				return nil, fmt.Errorf("kubetest: %s exited: %s", p.name, c.logTail())
			default:
			}
		}
		req, _ := http.NewRequest("GET", host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			b := make([]byte, 512)
			n, _ := resp.Body.Read(b)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, b[:n])
			if resp.StatusCode == 200 {
				ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
				if err != nil {
					return nil, fmt.Errorf("kubetest: the API server's certificate: %w", err)
				}
				return ca, nil
			}
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, fmt.Errorf("kubetest: the API server did not become ready (last answer: %s): %s", last, c.logTail())
}

// logTail is the end of every process's log, for a failure message.
func (c *Cluster) logTail() string {
	var b strings.Builder
	for _, p := range c.logs {
		data, _ := os.ReadFile(p)
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "\n--- %s\n%s", filepath.Base(p), data)
	}
	return b.String()
}

// Stop ends the API server, then etcd, and removes their files.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	c.procs = nil
	_ = os.RemoveAll(c.dir)
}

// freePorts reserves n distinct loopback ports and releases them for the
// processes to take (a small race with other programs, retried by nobody:
// a collision shows as a start failure naming the port).
func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// writeServiceAccountKeys makes the RSA key pair the API server signs and
// checks service-account tokens with.
func writeServiceAccountKeys(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), priv, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.pub"), pub, 0o644)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
