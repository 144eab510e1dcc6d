package orchestrator

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestTemplateResources(t *testing.T) {
	for _, c := range []struct {
		template string
		want     *Resources
		err      string
	}{
		{template: ``},
		{template: `{}`},
		{template: `{"spec": {"containers": [{"name": "other"}, {"name": "sidecar"}]}}`},
		{template: `{"spec": {"containers": [{"name": "runtime", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "250m"}}}]}}`,
			want: &Resources{Limits: map[string]string{"cpu": "1", "memory": "1Gi"}, Requests: map[string]string{"cpu": "250m"}}},
		{template: `{"spec": {"containers": [{"resources": {"limits": {"memory": "512Mi"}}}]}}`,
			want: &Resources{Limits: map[string]string{"memory": "512Mi"}}},
		{template: `{"spec": {"containers": [{"name": "runtime", "resources": {"limits": {"memory": "lots"}}}]}}`,
			err: `spec.template.spec.containers[0].resources.limits.memory is "lots": not a quantity`},
		{template: `{"spec": {"containers": [{"name": "runtime", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}}]}}`,
			err: "spec.template.spec.containers[0].resources.requests.cpu (2) is more than its limit (1)"},
		{template: `{"spec": {"containers": [{"name": "runtime", "resources": {"limits": ["1"]}}]}}`,
			err: "spec.template.spec.containers[0].resources: give limits and requests as maps of quantities"},
	} {
		got, err := TemplateResources(json.RawMessage(c.template))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.template, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, %v; want %+v", c.template, got, err, c.want)
		}
	}
	// A PUT with a bad quantity is refused when the spec is normalised.
	one := 1
	s := Spec{BarURL: []string{"https://example.com/a.bar"}, Replicas: &one,
		Template: json.RawMessage(`{"spec": {"containers": [{"name": "runtime", "resources": {"requests": {"memory": "-1Gi"}}}]}}`)}
	if err := s.Normalize(); err == nil || !strings.Contains(err.Error(), "requests.memory is negative") {
		t.Errorf("Normalize: %v", err)
	}
}
