package cli

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
)

// TestToYAMLKeepsTypesAndOrder checks that YAML made from JSON keeps the
// field order and does not turn strings that look like numbers or
// booleans into numbers or booleans.
func TestToYAMLKeepsTypesAndOrder(t *testing.T) {
	in := struct {
		Zeta  string         `json:"zeta"`
		Alpha string         `json:"alpha"`
		Num   int            `json:"num"`
		Flag  bool           `json:"flag"`
		Empty string         `json:"empty"`
		List  []string       `json:"list"`
		Obj   map[string]int `json:"obj"`
	}{"123", "true", 7, false, "", []string{"null", "a: b"}, map[string]int{"k": 1}}
	b, err := toYAML(in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Index(string(b), "zeta") > strings.Index(string(b), "alpha") || strings.Contains(string(b), "{") {
		t.Errorf("order or style lost:\n%s", b)
	}
	var back map[string]any
	if err := yaml.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["zeta"] != "123" || back["alpha"] != "true" || back["num"] != 7 || back["flag"] != false || back["empty"] != "" {
		t.Errorf("types changed: %#v\n%s", back, b)
	}
	if l, _ := back["list"].([]any); len(l) != 2 || l[0] != "null" || l[1] != "a: b" {
		t.Errorf("list: %#v", back["list"])
	}
}

func TestParseOwnerAndTimes(t *testing.T) {
	for in, want := range map[string]string{"user:alice": "user:alice", "serviceId:d": "serviceId:d", "service-id:d": "serviceId:d"} {
		o, err := parseOwner(in)
		if err != nil || o.Kind+":"+o.Name != want {
			t.Errorf("parseOwner(%q) = %v, %v", in, o, err)
		}
	}
	for _, in := range []string{"alice", "user:", "group:x"} {
		if _, err := parseOwner(in); err == nil {
			t.Errorf("parseOwner(%q) accepted", in)
		}
	}
	now := clocktest.Epoch()
	if got, err := parseExpiry("720h", now); err != nil || !got.Equal(now.Add(720*time.Hour)) {
		t.Errorf("parseExpiry(720h) = %v, %v", got, err)
	}
	if got, err := parseSince("--since", "1h", now); err != nil || !got.Equal(now.Add(-time.Hour)) {
		t.Errorf("parseSince(1h) = %v, %v", got, err)
	}
	for _, in := range []string{"-1h", "tomorrow", "2026-13-01"} {
		if _, err := parseExpiry(in, now); err == nil {
			t.Errorf("parseExpiry(%q) accepted", in)
		}
	}
}
