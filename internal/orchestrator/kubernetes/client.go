package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// client is how the backend talks to the cluster: client-go's dynamic
// client for objects and its REST client, on the same connection, for
// pod logs. Not the typed clientset: sluice is one executable, a runtime
// replica included, and the clientset links every API group's client and
// scheme, whose package initialisers ran at every process start (issue
// 18: 50 MB of binary and ~11 ms before main). The objects are still
// built and read as k8s.io/api's structs, which cost little to link, and
// converted to and from the dynamic client's unstructured maps here.
type client struct {
	dyn dynamic.Interface
	rc  rest.Interface
}

// The resources the backend reads and writes.
var (
	resDeployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	resServices    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	resSecrets     = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	resPods        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	resPolicies    = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}
	resIngresses   = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}
)

// newClient connects as cfg says. dynamic.ConfigFor gives the REST client
// the serializer that decodes the cluster's Status answers, so a refusal
// keeps the API server's own message (classify needs it).
func newClient(cfg *rest.Config) (*client, error) {
	cfg = dynamic.ConfigFor(cfg)
	h, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	cfg.GroupVersion = nil
	cfg.APIPath = "/" // every request names its whole path
	rc, err := rest.UnversionedRESTClientForConfigAndClient(cfg, h)
	if err != nil {
		return nil, err
	}
	return &client{dyn: dynamic.New(rc), rc: rc}, nil
}

func configFromFile(path string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

func (c *client) in(r schema.GroupVersionResource, ns string) dynamic.ResourceInterface {
	return c.dyn.Resource(r).Namespace(ns)
}

// get reads object ns/name of resource r into out (a k8s.io/api struct).
func (c *client) get(ctx context.Context, r schema.GroupVersionResource, ns, name string, out any) error {
	u, err := c.in(r, ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	return fromUnstructured(u, out)
}

// list reads the objects of resource r in ns that match selector.
func list[T any](ctx context.Context, c *client, r schema.GroupVersionResource, ns, selector string) ([]T, error) {
	l, err := c.in(r, ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	out := make([]T, len(l.Items))
	for i := range l.Items {
		if err := fromUnstructured(&l.Items[i], &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// apply server-side applies obj (with its TypeMeta) as Sluice's field
// manager, taking over fields another manager set, and reads the object
// the cluster answers into into (unless nil).
func (c *client) apply(ctx context.Context, r schema.GroupVersionResource, ns, name string, obj, into any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	u, err := c.in(r, ns).Patch(ctx, name, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: fieldManager, Force: ptr.To(true)})
	if err != nil || into == nil {
		return err
	}
	return fromUnstructured(u, into)
}

func (c *client) delete(ctx context.Context, r schema.GroupVersionResource, ns, name string, opts metav1.DeleteOptions) error {
	return c.in(r, ns).Delete(ctx, name, opts)
}

// podLog streams the runtime container's log of pod ns/name (what the
// typed clientset's GetLogs asks, by hand: the dynamic client has no
// streams).
func (c *client) podLog(ctx context.Context, ns, name string, tail int, follow bool) (io.ReadCloser, error) {
	req := c.rc.Get().AbsPath("/api/v1").Namespace(ns).Resource("pods").Name(name).SubResource("log").
		Param("container", containerName)
	if follow {
		req = req.Param("follow", "true")
	}
	if tail > 0 {
		req = req.Param("tailLines", strconv.Itoa(tail))
	}
	return req.Stream(ctx)
}

func fromUnstructured(u *unstructured.Unstructured, out any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), out); err != nil {
		return fmt.Errorf("kubernetes: the cluster answered a %s this backend cannot read: %w", u.GetKind(), err)
	}
	return nil
}
