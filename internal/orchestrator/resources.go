package orchestrator

import (
	"encoding/json"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Resources are the compute resources of a runtime's container, from
// spec.template.spec.containers[] in App Connect's shape: the container
// named "runtime", or the only one. Values are Kubernetes quantities
// ("500m", "1Gi"), checked when the spec is written. The Kubernetes
// backend sets them on its pods; the local backend has no use for them.
type Resources struct {
	Limits   map[string]string `json:"limits,omitempty"`
	Requests map[string]string `json:"requests,omitempty"`
}

// templateShape is the part of spec.template Sluice reads.
type templateShape struct {
	Spec struct {
		Containers []struct {
			Name      string          `json:"name"`
			Resources json.RawMessage `json:"resources"`
		} `json:"containers"`
	} `json:"spec"`
}

// TemplateResources reads the runtime container's resources from
// spec.template; nil when the template names none. An error says which
// field is wrong.
func TemplateResources(template json.RawMessage) (*Resources, error) {
	if len(template) == 0 {
		return nil, nil
	}
	var t templateShape
	if err := json.Unmarshal(template, &t); err != nil {
		return nil, fmt.Errorf("spec.template: %v", err)
	}
	idx := -1
	for i, c := range t.Spec.Containers {
		if c.Name == "runtime" {
			idx = i
		}
	}
	if idx < 0 && len(t.Spec.Containers) == 1 {
		idx = 0
	}
	if idx < 0 || len(t.Spec.Containers[idx].Resources) == 0 {
		return nil, nil
	}
	field := fmt.Sprintf("spec.template.spec.containers[%d].resources", idx)
	var r Resources
	if err := json.Unmarshal(t.Spec.Containers[idx].Resources, &r); err != nil {
		return nil, fmt.Errorf("%s: give limits and requests as maps of quantities (e.g. {\"cpu\": \"500m\", \"memory\": \"1Gi\"}): %v", field, err)
	}
	for _, part := range []struct {
		name string
		m    map[string]string
	}{{"limits", r.Limits}, {"requests", r.Requests}} {
		names := make([]string, 0, len(part.m))
		for n := range part.m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			q, err := resource.ParseQuantity(part.m[n])
			if err != nil {
				return nil, fmt.Errorf("%s.%s.%s is %.40q: not a quantity (e.g. 500m, 2, 512Mi, 1Gi)", field, part.name, n, part.m[n])
			}
			if q.Sign() < 0 {
				return nil, fmt.Errorf("%s.%s.%s is negative", field, part.name, n)
			}
		}
	}
	for n, req := range r.Requests {
		if lim, ok := r.Limits[n]; ok {
			rq, lq := resource.MustParse(req), resource.MustParse(lim)
			if rq.Cmp(lq) > 0 {
				return nil, fmt.Errorf("%s.requests.%s (%s) is more than its limit (%s)", field, n, req, lim)
			}
		}
	}
	return &r, nil
}

// ClusterError is a refusal or failure of the cluster a backend runs
// runtimes on (unreachable, unauthorised, forbidden by RBAC, over quota,
// refused by admission), as opposed to a failure of the runtime itself.
// The reconciler shows it as the runtime's ClusterAccepted condition;
// the backend retries with backoff. Message says what the cluster
// answered and holds no secret.
type ClusterError struct {
	Reason  string // CamelCase, e.g. Forbidden, QuotaExceeded, Unreachable
	Message string
}

func (e *ClusterError) Error() string { return e.Message }
