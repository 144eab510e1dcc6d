package kubetest

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestMain(m *testing.M) { Main(m) }

// The harness gives a real API server: objects are stored and read back,
// and RBAC refuses the restricted user what the admin may do.
func TestClusterServesAndAuthorizes(t *testing.T) {
	c := Shared(t)
	ns := c.Namespace(t)
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe"}, Data: map[string]string{"k": "v"}}
	if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "probe", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Fatalf("read back %v, %v", got, err)
	}
	restricted, err := kubernetes.NewForConfig(c.ConfigFor(RestrictedUser))
	if err != nil {
		t.Fatal(err)
	}
	_, err = restricted.CoreV1().ConfigMaps(ns).Get(ctx, "probe", metav1.GetOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), RestrictedUser) {
		t.Fatalf("restricted user: want forbidden naming the user, got %v", err)
	}
}
