package configuration

import (
	"strings"
	"testing"
)

func TestBarAuthAppliesOnlyWhereItIsBound(t *testing.T) {
	b := &BarAuth{AppliesTo: []string{"repo.example.com", "https://files.example.org/bars/", "pinned.example.net:8443"}}
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://repo.example.com/x.bar", true},
		{"https://REPO.example.com:9999/deep/x.bar", true}, // a host entry: any port, any path
		{"https://evil.example/x.bar", false},
		{"https://repo.example.com.evil.example/x.bar", false},
		{"http://repo.example.com/x.bar", false}, // never over plain http
		{"https://user@repo.example.com/x.bar", false},
		{"https://files.example.org/bars/a.bar", true},
		{"https://files.example.org/bars", false}, // the entry is what lies under bars/
		{"https://files.example.org/barsx/a.bar", false},
		{"https://files.example.org/other/a.bar", false},
		{"https://files.example.org/bars/../other/a.bar", false}, // resolves outside the prefix
		{"https://files.example.org/bars//a.bar", false},
		{"https://files.example.org:443/bars/a.bar", true},
		{"https://pinned.example.net:8443/a.bar", true},
		{"https://pinned.example.net/a.bar", false},
		{"https://pinned.example.net:8444/a.bar", false},
		{"not a url", false},
	} {
		if got := b.AppliesToURL(c.url); got != c.ok {
			t.Errorf("%s: applies %v, want %v", c.url, got, c.ok)
		}
	}
	var unbound *BarAuth
	if unbound.AppliesToURL("https://repo.example.com/x.bar") || (&BarAuth{}).AppliesToURL("https://repo.example.com/x.bar") {
		t.Error("a barauth without appliesTo applied")
	}
}

func TestBarAuthBindingIsValidated(t *testing.T) {
	base := `{"authType":"BASIC_AUTH","credentials":{"username":"u","password":"p"},"appliesTo":%s}`
	for _, bad := range []string{`["https://repo.example.com/a/../b"]`, `["http://repo.example.com/"]`, `["repo.example.com/bars"]`,
		`["https://u@repo.example.com/"]`, `["https://repo.example.com/?q=1"]`, `[""]`, `["ftp://x"]`} {
		_, err := ParseBarAuth([]byte(strings.Replace(base, "%s", bad, 1)))
		if err == nil || !strings.Contains(err.Error(), "appliesTo[0]") {
			t.Errorf("appliesTo %s: %v", bad, err)
		}
	}
	b, err := ParseBarAuth([]byte(strings.Replace(base, "%s", `["repo.example.com","https://files.example.org/bars/"]`, 1)))
	if err != nil || !b.Bound() {
		t.Fatalf("good binding: %v", err)
	}
}
