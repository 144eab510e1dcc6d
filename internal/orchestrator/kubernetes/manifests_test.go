package kubernetes

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/kubetest"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// The manifests of deploy/kubernetes are what an operator applies: every
// object is accepted by a real API server's validation and admission in
// a server-side dry-run apply (the namespaces are created for real, as
// the objects in them need them), and the Role grants exactly what the
// backend asks of the cluster.
func TestManifestsApplyOnARealAPIServer(t *testing.T) {
	cl := kubetest.Shared(t)
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	slices.Sort(files)
	dyn, err := dynamic.NewForConfig(cl.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cl.Client.Discovery()))
	kinds := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var obj unstructured.Unstructured
			if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(obj.Object) == 0 {
				continue
			}
			gvk := obj.GroupVersionKind()
			kinds[gvk.Kind]++
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%s: %s: %v", f, gvk, err)
			}
			body, _ := obj.MarshalJSON()
			opts := metav1.PatchOptions{FieldManager: "manifest-test", Force: ptrTrue()}
			if gvk.Kind != "Namespace" {
				opts.DryRun = []string{metav1.DryRunAll}
			}
			var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
			if ns := obj.GetNamespace(); ns != "" {
				ri = dyn.Resource(m.Resource).Namespace(ns)
			}
			if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, opts); err != nil {
				t.Errorf("%s: %s %s/%s refused: %v", filepath.Base(f), gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
			}
			switch gvk.Kind {
			case "Deployment":
				r, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "replicas")
				if replicas, _ := r.(float64); replicas < 2 {
					t.Errorf("the control plane runs %v replicas", r)
				}
				args, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
				if !strings.Contains(strings.Join(fmtSlice(args), " "), "--runtime-backend=kubernetes") {
					t.Errorf("the control plane does not use the kubernetes backend: %v", args)
				}
			case "Role":
				var role rbacv1.Role
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &role); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(role.Rules, RBACRules()) {
					t.Errorf("the Role's rules are not RBACRules():\n%+v\n%+v", role.Rules, RBACRules())
				}
			}
		}
	}
	for _, kind := range []string{"Namespace", "Secret", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "NetworkPolicy"} {
		if kinds[kind] == 0 {
			t.Errorf("no %s in deploy/kubernetes", kind)
		}
	}
}

func ptrTrue() *bool { b := true; return &b }

func fmtSlice(v []any) []string {
	var out []string
	for _, c := range v {
		m, _ := c.(map[string]any)
		args, _ := m["args"].([]any)
		for _, a := range args {
			s, _ := a.(string)
			out = append(out, s)
		}
	}
	return out
}
